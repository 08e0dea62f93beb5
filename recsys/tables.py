"""Your own interactions and click rows: any CSV, TSV or Parquet table, read into the structures the
MovieLens and Criteo readers build.

`load_interactions` is what every MovieLens trainer reads: the release, with `--columns` a table, with
`--tfds` TFDS's `movielens/<size>-ratings` (`read_tfds_ratings`, the same arrays as the release's file).
`find_table` picks the table in a `--data-dir` (by extension, or `--data-file`); `read_interactions`
reads the `--columns user,item[,rating][,timestamp]` of it (names, or 0-based positions; a header
line is detected) into `recsys.movielens.Interactions`: ids of any type are mapped to dense indices in
sorted order (`user_ids`/`item_ids` map them back, and the run keeps them in `ids.npz`), a missing
rating column is implicit feedback (every rating 1), a missing timestamp keeps file order.
`read_click_table` reads `--label`, `--numeric` and `--categorical` columns into raw per-field tokens
for `recsys.ctr.FieldVocabulary` (numbers bucketed as Criteo's integers). Parsing is pandas' C reader
or pyarrow's Parquet reader; everything after is vectorised NumPy. Importing this module loads NumPy only
(pandas and pyarrow when a table is read).
"""
import re
from pathlib import Path

import numpy as np

from common.data import find_layout
from common.errors import DatasetError, DlsuiteError, UsageError
from recsys.movielens import RELEASES, Interactions, load_movielens, parse_columns

TABLE_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet", ".pq": "parquet"}
SEPARATORS = {"csv": ",", "tsv": "\t"}
_INTEGER = r"-?(?:0|[1-9][0-9]*)"  # ids written so are numbers (sorted as such); "007" stays a string id


def find_table(directory, fmt="auto", data_file=""):
    """(path, format) of the table to read in `directory`: `data_file` there, else its only
    `.csv`/`.tsv`/`.parquet` file (of `fmt` unless "auto"). DatasetError names the folder and what it
    found when there is none, or several of one format, or several formats."""
    directory = Path(directory)
    if data_file:
        path = directory / data_file
        if not path.is_file():
            raise DatasetError(f"{path} not found; --data-file names a file inside --data-dir")
        kind = TABLE_FORMATS.get(path.suffix.lower()) if fmt == "auto" else fmt
        if kind is None:
            raise UsageError(f"{path} is not named .csv, .tsv or .parquet; give its --format (csv, tsv or parquet)")
        return path, kind
    if not directory.is_dir():
        raise DatasetError(f"{directory} is not a folder; --data-dir holds the table (or pass --data-file)")
    found = [p for p in sorted(directory.iterdir()) if p.is_file() and p.suffix.lower() in TABLE_FORMATS
             and (fmt == "auto" or TABLE_FORMATS[p.suffix.lower()] == fmt)]
    kinds = sorted({TABLE_FORMATS[p.suffix.lower()] for p in found})
    if not found:
        what = "" if fmt == "auto" else f" {fmt}"
        others = ", ".join(p.name for p in sorted(directory.iterdir())[:5]) or "nothing"
        raise DatasetError(f"{directory} holds no{what} table (.csv, .tsv or .parquet); found: {others}")
    if len(kinds) > 1:
        raise DatasetError(f"{directory} holds tables of several formats ({', '.join(kinds)}: "
                           f"{', '.join(p.name for p in found[:5])}); name one with --data-file")
    if len(found) > 1:
        raise DatasetError(f"{directory} holds {len(found)} {kinds[0]} tables ({', '.join(p.name for p in found[:5])})"
                           "; name one with --data-file")
    return found[0], kinds[0]


def _is_number(values):
    """Boolean array: which strings parse as numbers."""
    import pandas as pd

    return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").notna().to_numpy()


def _detect_header(sample, names):
    """Whether the first row of `sample` (a str DataFrame of the first lines) is a header: always when
    columns are named; for positions, when some column is text on the first row and numbers below it."""
    if names:
        return True
    if len(sample) < 2:
        return not _is_number(sample.iloc[0].to_numpy()).any()
    first = _is_number(sample.iloc[0].to_numpy())
    below = np.array([_is_number(sample.iloc[1:, c].to_numpy()).all() for c in range(sample.shape[1])])
    return bool((~first & below).any())


def _select(path, header, wanted, where):
    """0-based column positions of `wanted` (names or positions) in a table whose columns are `header`
    (the header's names, or None for a file without one, whose width is `where`'s int)."""
    width = len(header) if header is not None else where
    out = []
    for column in wanted:
        if isinstance(column, int):
            if column >= width:
                raise DatasetError(f"{path} has {width} columns; position {column} is out of range "
                                   "(positions count from 0)")
            out.append(column)
        elif header is None or column not in header:
            found = ", ".join(map(str, header)) if header is not None else f"{width} unnamed columns"
            hint = " (a file without a header takes 0-based positions)" if header is None else ""
            raise DatasetError(f"{path} has no column {column!r}; its columns: {found}{hint}")
        else:
            out.append(list(header).index(column))
    return out


def read_columns(path, fmt, wanted, text=()):
    """The `wanted` columns (names or 0-based positions; None entries skipped) of a table ->
    (dict wanted -> pandas Series of the file's values, `line_of`: row index -> the file's line
    number (or Parquet row) text for messages). In a text table the `text` columns are read as strings
    (ids: "007" stays "007"), the others with pandas' type inference; Parquet keeps its types."""
    import pandas as pd

    path = Path(path)
    wanted = [w for w in wanted if w is not None]
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            names = pq.read_schema(path).names
            positions = _select(path, names, wanted, None)
            frame = pq.read_table(path, columns=[names[p] for p in sorted(set(positions))]).to_pandas()
        except DatasetError:
            raise
        except Exception as e:  # pyarrow's ArrowInvalid, OSError: not a Parquet file
            raise DatasetError(f"{path} is not a readable Parquet file ({str(e).splitlines()[0]})") from None
        return {w: frame[names[p]] for w, p in zip(wanted, positions)}, lambda row: f"row {row + 1}"
    sep = SEPARATORS[fmt]
    options = dict(sep=sep, header=None, dtype=str, keep_default_na=False, encoding="utf-8",
                   encoding_errors="replace", quoting=3 if sep == "\t" else 0)
    try:
        sample = pd.read_csv(path, nrows=50, **options)
    except pd.errors.EmptyDataError:
        raise DatasetError(f"{path} is empty; expected a {fmt.upper()} table") from None
    except pd.errors.ParserError as e:
        raise _parse_error(path, fmt, e) from None
    header = _detect_header(sample, [w for w in wanted if isinstance(w, str)])
    names = sample.iloc[0].tolist() if header else None
    positions = _select(path, names, wanted, sample.shape[1])
    try:
        # every column read (pandas' usecols would pass a line with an extra field, e.g. an unquoted comma)
        strings = {p: str for w, p in zip(wanted, positions) if w in text}
        frame = pd.read_csv(path, names=list(range(sample.shape[1])), index_col=False, skiprows=1 if header else 0,
                            skip_blank_lines=False, low_memory=False, na_values=[""],  # only "" is empty
                            **{**options, "dtype": strings})
    except pd.errors.ParserError as e:
        raise _parse_error(path, fmt, e) from None
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame({p: pd.Series([], dtype=object) for p in sorted(set(positions))})
    blank = frame.isna().all(axis=1).to_numpy()
    lines = np.flatnonzero(~blank) + 1 + int(header)
    frame = frame[~blank].reset_index(drop=True)
    return {w: frame[p] for w, p in zip(wanted, positions)}, lambda row: f"line {lines[row]}"


def _parse_error(path, fmt, error):
    """The DatasetError of pandas' ParserError `error` on a text table: a line with another number of fields than
    the first is named (pandas counts the file's lines, skipped ones included) with both counts."""
    found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(error))
    if found:
        kind = "tab" if fmt == "tsv" else "comma"
        return DatasetError(f"{path} line {found.group(2)}: expected {found.group(1)} {kind}-separated "
                            f"fields, got {found.group(3)}")
    return DatasetError(f"{path}: cannot parse as {fmt.upper()} ({str(error).splitlines()[0]})")


def _first_bad(path, where, bad, message):
    if bad.any():
        row = int(np.argmax(bad))
        raise DatasetError(f"{path} {where(row)}: {message(row)}")


def _text(series):
    """A column's values as a NumPy str array, "" for empty cells (pandas 3 keeps NaN through astype(str))."""
    return series.astype(object).where(series.notna(), "").astype(str).to_numpy(object).astype(str)


def _ids(series, path, where, name):
    """A column of ids -> (sorted distinct ids, dense index of each row): int64 ids when every value is an
    integer, else str ids. pandas' hash-table `factorize` finds the distinct ids; only they are sorted."""
    import pandas as pd

    _first_bad(path, where, series.isna().to_numpy(), lambda row: f"empty {name}")
    codes, distinct = pd.factorize(series)
    if pd.api.types.is_integer_dtype(series.dtype):
        ids = np.asarray(distinct, np.int64)
    else:
        ids = _text(pd.Series(distinct))
        if pd.Series(ids).str.fullmatch(_INTEGER).all():
            ids = ids.astype(np.int64)
    order = np.argsort(ids, kind="stable")
    rank = np.empty(len(ids), np.int64)
    rank[order] = np.arange(len(ids))
    return ids[order], rank[codes]


def _numbers(series, path, where, name, what="a number"):
    """A column of numbers -> float64 values; DatasetError names the first non-numeric one."""
    import pandas as pd

    values = pd.to_numeric(series, errors="coerce").to_numpy(np.float64)
    _first_bad(path, where, np.isnan(values), lambda row: f"{name} {str(series.iloc[row])!r} is not {what}"
               if series.notna().iloc[row] else f"empty {name}")
    return values


def _timestamps(series, path, where):
    """Timestamps -> int64 seconds: numbers as they are, date-times (ISO 8601 and the like) as Unix seconds."""
    import pandas as pd

    seconds = pd.to_numeric(series, errors="coerce").to_numpy(np.float64, copy=True)
    text = np.isnan(seconds) & series.notna().to_numpy()
    if text.any():
        times = pd.to_datetime(series[text], errors="coerce", utc=True, format="mixed")
        seconds[text] = ((times - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(np.float64)
    _first_bad(path, where, np.isnan(seconds),
               lambda row: f"timestamp {str(series.iloc[row])!r} is neither a number nor a date-time"
               if series.notna().iloc[row] else "empty timestamp")
    return np.floor(seconds).astype(np.int64)


def read_interactions(path, fmt, columns):
    """A table's `columns` (`parse_columns` text) -> `Interactions` with dense ids.

    users/items: dense indices of the ids in sorted order (numbers when every id is an integer,
    else strings), `user_ids`/`item_ids` the file's ids; ratings: the rating column (float32), or
    1 for every row without one (`explicit=False`, implicit feedback); timestamps: int64 seconds, or
    0 without a column (the splits then take file order). DatasetError names the file, the line (or
    Parquet row) and the value of the first bad row; an empty table is an error too.
    """
    path = Path(path)
    spec = parse_columns(columns)
    data, where = read_columns(path, fmt, spec, text=spec[:2])
    user = data[spec[0]]
    if not len(user):
        raise DatasetError(f"{path} holds no interactions; expected one row per interaction with the columns "
                           f"--columns {columns}")
    user_ids, users = _ids(user, path, where, "user")
    item_ids, items = _ids(data[spec[1]], path, where, "item")
    explicit = spec[2] is not None
    ratings = _numbers(data[spec[2]], path, where, "rating") if explicit else np.ones(len(users))
    timestamps = _timestamps(data[spec[3]], path, where) if spec[3] is not None else np.zeros(len(users), np.int64)
    scale = (float(ratings.min()), float(ratings.max()))
    return Interactions(users.astype(np.int32), items.astype(np.int32), ratings.astype(np.float32), timestamps,
                        len(user_ids), len(item_ids), str(path), user_ids, item_ids, scale, explicit)


def numeric_tokens(values):
    """Numbers `(rows,)` float64 (NaN for empty) -> str tokens as Criteo's integers become theirs (`recsys.criteo`):
    v > 2 -> floor(ln(v)^2), else floor(v); "" for empty."""
    empty = np.isnan(values)
    v = np.where(empty, 0.0, values)
    tokens = np.floor(np.where(v > 2, np.log(np.maximum(v, 1.0)) ** 2, v)).astype(np.int64).astype(str)
    return np.where(empty, "", tokens)


def _names(text):
    return [c.strip() for c in str(text).split(",") if c.strip()]


def read_click_table(path, fmt, label, numeric, categorical):
    """A table of clicks -> (labels float32 `(rows,)` or None without `label`, raw str tokens `(rows, fields)`).

    `numeric`, `categorical`: comma-separated column names (or positions); fields are the numeric columns
    (`numeric_tokens`, empty cells allowed) then the categorical ones (their text, "" for empty), what
    `recsys.ctr.FieldVocabulary` maps to feature ids. The label must be 0 or 1 and hold both classes.
    DatasetError names the file, line (or Parquet row) and value of the first bad cell.
    """
    import pandas as pd

    path = Path(path)
    numeric, categorical = _names(numeric), _names(categorical)
    to_int = lambda c: int(c) if c.isdigit() else c  # noqa: E731
    wanted = [to_int(c) for c in ([label] if label else []) + numeric + categorical]
    data, where = read_columns(path, fmt, wanted, text=[to_int(c) for c in categorical])
    rows = len(data[wanted[0]])
    if not rows:
        raise DatasetError(f"{path} holds no rows; expected one row per impression with a 0/1 {label or 'label'} "
                           "column")
    fields = []
    for name in numeric:
        series = data[to_int(name)]
        values = pd.to_numeric(series, errors="coerce").to_numpy(np.float64)
        _first_bad(path, where, np.isnan(values) & series.notna().to_numpy(),
                   lambda row: f"numeric {name} {str(series.iloc[row])!r} is not a number")
        fields.append(numeric_tokens(values))
    for name in categorical:
        series = data[to_int(name)]
        fields.append(_text(series))
    raw = np.stack(fields, axis=1).astype(str)
    if not label:
        return None, raw
    labels = _numbers(data[to_int(label)], path, where, "label", "0 or 1")
    _first_bad(path, where, (labels != 0) & (labels != 1),
               lambda row: f"label {str(data[to_int(label)].iloc[row])!r} is not 0 or 1")
    if len(np.unique(labels)) < 2:
        raise DatasetError(f"{path}: the label column {label!r} holds only {labels[0]:g} ({rows} rows); a click "
                           "model needs both clicks (1) and non-clicks (0)")
    return labels.astype(np.float32), raw


def interaction_source(ctx):
    """`load_interactions`' data options of a command: the config's (`MovieLensConfig.source()`) and `--tfds`."""
    return {**ctx.config.source(), "tfds": (ctx.tfds["name"], ctx.tfds_examples) if ctx.tfds else None}


TFDS_BATCH = 1 << 16  # examples per batch read from TFDS (`read_tfds_ratings`)
TFDS_FIELDS = ("user_id", "movie_id", "user_rating", "timestamp")


def read_tfds_ratings(name, batches):
    """A TFDS `movielens/*-ratings` split, as batches (dicts of arrays: `user_id`, `movie_id` bytes, `user_rating`
    float32, `timestamp` int64) -> `Interactions`, ids mapped as a table's (`read_interactions`): TFDS's ids are
    the files' numbers as text, so the dense ids and the run's `ids.npz` are those of the release's own file."""
    import pandas as pd

    parts = {key: [] for key in TFDS_FIELDS}
    for batch in batches:  # a loop over batches of TFDS_BATCH examples, not over examples
        for key in TFDS_FIELDS:
            parts[key].append(np.asarray(batch[key]))
    examples = {key: np.concatenate(parts[key]) if parts[key] else np.zeros(0) for key in TFDS_FIELDS}

    def column(key):
        return pd.Series(np.char.decode(examples[key].astype(bytes), "utf-8"), dtype=object)

    where = lambda row: f"example {row + 1}"  # noqa: E731
    if not len(examples["user_id"]):
        raise DatasetError(f"TFDS {name} holds no ratings")
    user_ids, users = _ids(column("user_id"), f"TFDS {name}", where, "user")
    item_ids, items = _ids(column("movie_id"), f"TFDS {name}", where, "item")
    ratings = np.asarray(examples["user_rating"], np.float32)
    return Interactions(users.astype(np.int32), items.astype(np.int32), ratings,
                        np.asarray(examples["timestamp"], np.int64), len(user_ids), len(item_ids), f"TFDS {name}",
                        user_ids, item_ids, (float(ratings.min()), float(ratings.max())))


def load_interactions(data_dir=None, demo=False, dataset="ml-100k", format="auto", columns="", data_file="",
                      tfds=None):
    """The interactions a recommender trains on (`MovieLensConfig.source()`'s options): with `tfds` (name, the
    command's `tfds_examples`) TFDS's ratings; with `columns`, the table in `data_dir` (`find_table`,
    `read_interactions`); else the MovieLens release (`load_movielens`). A `data_dir` without the release's
    file but with a table is one line asking for `--columns`."""
    if tfds is not None:
        from common.tfds_source import dataset_name

        name, read = tfds
        config = dataset_name(name).split(":")[0].partition("/")[2]
        if columns or config and not config.endswith("-ratings"):
            raise UsageError(f"--tfds {name}: the MovieLens trainers read TFDS's ratings as they are, from a "
                             "movielens/<size>-ratings config (e.g. movielens/100k-ratings), without --columns")
        return read_tfds_ratings(dataset_name(name), read("train", batch_size=TFDS_BATCH))
    if columns:
        if demo or data_dir is None:
            raise UsageError("--columns reads a table in --data-dir" + ("; --demo generates MovieLens' u.data "
                                                                         "(omit one)" if demo else ""))
        return read_interactions(*find_table(data_dir, format, data_file), columns)
    if data_dir is not None and not demo and format == "auto":
        release = RELEASES[dataset]
        directory = Path(data_dir)
        if (find_layout(directory, [release.filename]) is None and not (directory / f"{dataset}.zip").exists()
                and directory.is_dir()):
            try:
                path, kind = find_table(directory)
            except DlsuiteError:
                path = None
            if path is not None:
                raise UsageError(f"{directory} holds no {release.filename} but the {kind} table {path.name}: pass "
                                 "--columns user,item[,rating][,timestamp] (names or 0-based positions)")
    return load_movielens(data_dir, demo, dataset)
