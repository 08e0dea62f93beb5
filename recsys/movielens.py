"""MovieLens: every GroupLens release's ratings file, read into `Interactions`, and offline generators.

Ratings files are parsed by pandas' C reader in chunks (`read_rating_columns`), ids remapped
to dense indices (`Interactions.user_ids`/`item_ids` map them back); everything after parsing
is NumPy. Interaction data is an `Interactions` record of parallel arrays (zero-based user and
item ids, ratings, timestamps). The splits are `recsys.splits`, the implicit-feedback index,
negative sampling and sequence windows `recsys.implicit`, the book's CTR files `recsys.ctr`, your own
tables and TFDS's ratings `recsys.tables`. `MovieLensConfig` (`--dataset`, and `--columns`, `--format`,
`--data-file` for a table) is light: importing this module loads NumPy only.
"""
import dataclasses
import itertools
import re
import typing
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common import cli
from common.data import cache_root, demo_cache_dir, extract, find_layout, resolve_dataset
from common.errors import DatasetError, UsageError
from common.files import atomic_path
from recsys import DEMO_ROOT

ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
ML100K_SHA1 = "cd4dcac4241c8a4ad7badc7ca635da8a69dddb83"
RATING_SCALE = (1, 5)
# Version of what the demo generator here writes (`generate_movielens`), part of its cache folder
# names (`recsys-demo/<release>-v1`): bump it whenever the bytes it writes change, so sets cached by
# the older code are not reused.
GENERATOR_VERSION = 1


@dataclass
class Interactions:
    """Parallel arrays of interactions with zero-based (dense) ids.

    users, items: int32 `(n,)`; ratings: float32 `(n,)` (1 for implicit feedback);
    timestamps: int64 `(n,)` (seconds); `num_users`/`num_items` size the id spaces.
    `user_ids`/`item_ids` give the file's id of each dense index (None: dense index + 1; ints, or str
    for a table's string ids), `rating_scale` the (lowest, highest) rating; `explicit` False for
    implicit feedback (a table without a rating column).
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray
    num_users: int
    num_items: int
    source: str = ""
    user_ids: np.ndarray = None
    item_ids: np.ndarray = None
    rating_scale: tuple = RATING_SCALE
    explicit: bool = True

    def __len__(self):
        return len(self.users)

    def _with(self, users, items, ratings, timestamps):
        return dataclasses.replace(self, users=users, items=items, ratings=ratings, timestamps=timestamps)

    def subset(self, index):
        """The interactions selected by a boolean mask or an index array (same id spaces)."""
        return self._with(self.users[index], self.items[index], self.ratings[index], self.timestamps[index])

    def concat(self, other):
        """These interactions followed by `other`'s (same id spaces)."""
        return self._with(*(np.concatenate([getattr(self, k), getattr(other, k)])
                            for k in ("users", "items", "ratings", "timestamps")))

    def file_ids(self, kind, dense):
        """The file's user (`kind="user"`) or item ids of dense indices `dense`."""
        ids = self.user_ids if kind == "user" else self.item_ids
        dense = np.asarray(dense)
        return dense + 1 if ids is None else ids[dense]

    def stats(self):
        """Counts and sparsity (fraction of the user x item matrix that is unobserved)."""
        return {"users": self.num_users, "items": self.num_items, "interactions": len(self),
                "sparsity": 1.0 - len(self) / (self.num_users * self.num_items)}

    def rating_matrix(self):
        """Dense `(num_users, num_items)` float32 matrix of ratings, 0 where unobserved."""
        matrix = np.zeros((self.num_users, self.num_items), np.float32)
        matrix[self.users, self.items] = self.ratings
        return matrix


@dataclass(frozen=True)
class Release:
    """One GroupLens MovieLens release: its ratings file, field separator, header and rating scale."""

    filename: str
    sep: str
    header: bool
    scale: tuple
    sha1: str = None  # pinned where known; None: the download is not checked against a published hash


MOVIELENS_URL = "https://files.grouplens.org/datasets/movielens"
RELEASES = {
    "ml-100k": Release("u.data", "\t", False, (1, 5), ML100K_SHA1),
    "ml-1m": Release("ratings.dat", "::", False, (1, 5)),
    "ml-10m": Release("ratings.dat", "::", False, (0.5, 5)),
    "ml-20m": Release("ratings.csv", ",", True, (0.5, 5)),
    "ml-25m": Release("ratings.csv", ",", True, (0.5, 5)),
}


RATING_FIELDS = ("user", "item", "rating", "timestamp")
CHUNK_ROWS = 2_000_000


def parse_columns(text, flag="--columns", fields=RATING_FIELDS, required=2):
    """`"user,item,rating"` -> `["user", "item", "rating", None]`: one entry per field of `fields`, a
    column name, a 0-based position (int), or None where absent (given empty: `"u,i,,ts"`)."""
    parts = [p.strip() for p in str(text).split(",")]
    if not required <= len(parts) <= len(fields) or any(not p for p in parts[:required]):
        raise UsageError(f"{flag} takes {','.join(fields[:required])}[,{'][,'.join(fields[required:])}] "
                         f"(column names or 0-based positions), got {text!r}")
    named = [int(p) if p.isdigit() else (p or None) for p in parts]
    return named + [None] * (len(fields) - len(named))


TABLE_CHOICES = ["auto", "movielens", "csv", "tsv", "parquet"]
# --tfds: the TFDS datasets the MovieLens trainers read (`recsys.tables.read_tfds_ratings`)
TFDS = {"movielens": "its -ratings configs, e.g. movielens/100k-ratings, movielens/1m-ratings"}


@dataclass
class MovieLensConfig(cli.TrainConfig):
    """The data flags of every MovieLens trainer (their Configs add the model's own): a MovieLens
    release (`--dataset`) or a table of interactions (`--columns`, `--format`, `--data-file`).
    `NEEDS_RATINGS`: the model fits ratings, so a table needs a rating column."""

    NEEDS_RATINGS: typing.ClassVar[bool] = False

    dataset: str = field(default="ml-100k", metadata={"choices": list(RELEASES), "help": (
        "MovieLens release: --data-dir holds its ratings file (u.data, ratings.dat or ratings.csv) or <name>.zip")})
    columns: str = field(default="", metadata={"metavar": "USER,ITEM[,RATING][,TIME]", "help": (
        "read a CSV/TSV/Parquet table of interactions in --data-dir instead: its user, item and optional rating "
        "and timestamp columns, names or 0-based positions (u,i,,t: no rating); ids of any type; no rating "
        "column: implicit feedback")})
    format: str = field(default="auto", metadata={"choices": TABLE_CHOICES, "help": (
        "auto: a table when --columns is given (format from its extension), else the MovieLens release")})
    data_file: str = field(default="", metadata={"metavar": "NAME", "help": (
        "the table inside --data-dir (default: its only .csv, .tsv or .parquet file)")})

    def validate(self):
        super().validate()
        if self.columns:
            spec = parse_columns(self.columns)
            if self.format == "movielens":
                raise UsageError("--columns reads a table; --format movielens reads the release's own file "
                                 "(omit one)")
            if self.NEEDS_RATINGS and spec[2] is None:
                raise UsageError(f"--columns {self.columns} has no rating column, and this model fits ratings: "
                                 "add it (user,item,rating), or train recsys.neumf or recsys.caser on implicit "
                                 "feedback")
        elif self.format not in ("auto", "movielens") or self.data_file:
            flag = f"--format {self.format}" if self.format not in ("auto", "movielens") else "--data-file"
            raise UsageError(f"{flag} reads a table: give its --columns user,item[,rating][,timestamp]")

    def source(self):
        """The data options of `recsys.splits.load_splits`: {dataset, format, columns, data_file}."""
        return {"dataset": self.dataset, "format": self.format, "columns": self.columns,
                "data_file": self.data_file}


def recommend_arguments(parser):
    """`predict --user ID [--top N]`: the flags of the MovieLens recommenders' predict command."""
    parser.add_argument("--user", required=True, help="user id as in the ratings file or table (e.g. 3 or alice)")
    parser.add_argument("--top", type=cli.positive_int, default=10, help="how many items to recommend (default: 10)")


def export_arguments(parser):
    """`export --out DIR [--k N]`: the export flags (`common.export.add_arguments`) and the items per user."""
    from common.export import add_arguments

    add_arguments(parser)
    parser.add_argument("--k", type=cli.positive_int, default=10,
                        help="items returned per user, best first (default: 10, as predict's --top)")


def _read_declared_counts(directory):
    """`u.info` ("943 users", "1682 items") as a dict, or {} when absent. A `u.info` without both
    counts (empty, binary, another file's text) raises DatasetError naming it."""
    info = Path(directory) / "u.info"
    counts = {}
    if info.exists():
        for line in info.read_text(encoding="latin-1").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0].isdigit():
                counts[parts[1]] = int(parts[0])
        missing = [k for k in ("users", "items") if counts.get(k, 0) < 1]
        if missing:
            raise DatasetError(f"{info} declares no '<N> {missing[0]}' line; MovieLens' u.info reads '943 users' and "
                               "'1682 items' on lines of their own (or delete it: the counts then come from u.data)")
    return counts


def _line_text(path, number):
    """Line `number` (1-based) of a text file, read up to that line only."""
    with open(path, encoding="latin-1") as f:
        return next(itertools.islice(f, number - 1, None), "").rstrip("\n")


def _blank_rows(chunk):
    """Rows of a pandas chunk read from blank lines (every field missing); the readers drop them."""
    return chunk.isna().all(axis=1).to_numpy()


def _chunk_columns(chunk, path, release, first_line):
    """Four numeric columns (user, item, rating, timestamp) of one pandas chunk, or DatasetError
    naming the first malformed line. Blank lines (all fields missing) are dropped."""
    import pandas as pd

    expected = _expected_fields(release)
    raw = chunk.iloc[:, ::2] if release.sep == "::" else chunk
    blank = _blank_rows(chunk)
    problems = []  # (row, message) of the first bad row of each kind
    missing = raw.isna().any(axis=1).to_numpy() & ~blank
    if release.sep == "::":
        missing |= chunk.iloc[:, 1::2].notna().any(axis=1).to_numpy()  # a single ':' inside the line
    if missing.any():
        row = int(np.argmax(missing))
        text = _line_text(path, first_line + row)
        problems.append((row, f"expected {expected}, got {len(text.split(release.sep))}: {text[:60]!r}"))
    columns = []
    for c, name in enumerate(RATING_FIELDS):
        values = pd.to_numeric(raw.iloc[:, c], errors="coerce").to_numpy(np.float64)
        bad = np.isnan(values) & ~missing & ~blank
        if bad.any():
            row = int(np.argmax(bad))
            problems.append((row, f"{name} {str(raw.iloc[row, c])!r} is not a number"))
        fraction = ~np.isnan(values) & (values != np.round(values)) if name != "rating" else bad
        if fraction.any():
            row = int(np.argmax(fraction))
            problems.append((row, f"{name} {str(raw.iloc[row, c])!r} is not an integer"))
        columns.append(values[~blank])
    if problems:
        row, message = min(problems)
        raise DatasetError(f"{path} line {first_line + row}: {message}")
    return columns


def _expected_fields(release):
    name = {"\t": "tab", ",": "comma"}.get(release.sep, repr(release.sep))
    return f"4 {name}-separated fields (user, item, rating, timestamp)"


def _rating_chunks(path, release):
    """(file line of the chunk's first row, pandas chunk of `CHUNK_ROWS` lines, blank lines included)
    of a ratings file, the header skipped."""
    import pandas as pd

    width = 7 if release.sep == "::" else 4
    first_line = 2 if release.header else 1
    reader = pd.read_csv(path, sep=":" if release.sep == "::" else release.sep, header=None,
                         names=range(width), skiprows=1 if release.header else 0, skip_blank_lines=False,
                         chunksize=CHUNK_ROWS, encoding="latin-1")
    for chunk in reader:
        if len(chunk):  # an empty (or header-only) file gives one empty chunk with names=
            yield first_line + int(chunk.index[0]), chunk


def _line_of_row(path, release, row):
    """File line (1-based) of data row `row` (0-based, counting the rows `read_rating_columns` returns,
    blank lines left out), found by reading the file again: for error messages only."""
    for first_line, chunk in _rating_chunks(path, release):
        kept = np.flatnonzero(~_blank_rows(chunk))
        if row < len(kept):
            return first_line + int(kept[row])
        row -= len(kept)
    raise IndexError(row)


def read_rating_columns(path, release):
    """A MovieLens ratings file -> (users int64, items int64, ratings float32, timestamps int64), file ids.

    Vectorised: pandas' C parser reads `CHUNK_ROWS` lines at a time (a '::' file is read
    as ':'-separated with the empty fields between dropped). A malformed line, a
    non-numeric field or a wrong field count raises `DatasetError` naming the line.
    """
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path} not found; --data-dir must hold MovieLens' {path.name}")
    parts = []
    try:
        for first_line, chunk in _rating_chunks(path, release):
            parts.append(_chunk_columns(chunk, path, release, first_line))
    except pd.errors.ParserError as e:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(e))
        if not found:
            raise DatasetError(f"{path}: cannot parse ({e})") from None
        saw = int(found.group(3))
        got = (saw + 1) // 2 if release.sep == "::" else saw
        raise DatasetError(f"{path} line {found.group(2)}: expected {_expected_fields(release)}, got {got}") from None
    except pd.errors.EmptyDataError:
        parts = []
    if not parts or not sum(len(p[0]) for p in parts):
        header = ", after the header line userId,movieId,rating,timestamp" if release.header else ""
        raise DatasetError(f"{path} holds no ratings; MovieLens' {path.name} has one rating per line: "
                           f"{_expected_fields(release)}{header}")
    users, items, ratings, timestamps = (np.concatenate([p[c] for p in parts]) for c in range(4))
    return users.astype(np.int64), items.astype(np.int64), ratings.astype(np.float32), timestamps.astype(np.int64)


def read_movielens(directory, dataset="ml-100k"):
    """Read a MovieLens release's ratings file from `directory` -> `Interactions` with dense ids.

    ml-100k: `u.data` (tab separated, ids from 1; the id spaces come from `u.info` when
    present, ids beyond them are errors). ml-1m/ml-10m: `ratings.dat` ('::' separated);
    ml-20m/ml-25m: `ratings.csv` (header `userId,movieId,rating,timestamp`). Ids of the
    larger releases are remapped to dense indices in sorted order (`Interactions.user_ids`
    /`item_ids` map them back). Malformed lines and ratings outside the release's scale
    raise `DatasetError` naming the line.
    """
    release = RELEASES[dataset]
    path = Path(directory) / release.filename
    users, items, ratings, timestamps = read_rating_columns(path, release)
    lo, hi = release.scale
    bad = np.flatnonzero((ratings < lo) | (ratings > hi))
    if bad.size:
        raise DatasetError(f"{path} line {_line_of_row(path, release, bad[0])}: rating {ratings[bad[0]]:g} "
                           f"is outside the {lo:g}-{hi:g} scale")
    if dataset == "ml-100k":
        declared = _read_declared_counts(path.parent)
        num_users = declared.get("users", int(users.max()))
        num_items = declared.get("items", int(items.max()))
        for name, ids, count in (("user", users, num_users), ("item", items, num_items)):
            bad = np.flatnonzero((ids < 1) | (ids > count))
            if bad.size:
                i = bad[0]
                raise DatasetError(f"{path} line {_line_of_row(path, release, i)}: {name} id {ids[i]} is outside "
                                   f"1..{count}" + (" (declared in u.info)" if name + "s" in declared else ""))
        return Interactions((users - 1).astype(np.int32), (items - 1).astype(np.int32), ratings, timestamps,
                            num_users, num_items, str(path), rating_scale=release.scale)
    user_ids, dense_users = np.unique(users, return_inverse=True)
    item_ids, dense_items = np.unique(items, return_inverse=True)
    return Interactions(dense_users.astype(np.int32), dense_items.astype(np.int32), ratings, timestamps,
                        len(user_ids), len(item_ids), str(path), user_ids, item_ids, release.scale)


ID_MAPS = "ids.npz"


def save_id_maps(run, data):
    """Write the dense-index -> file-id maps of `data` into a new run directory (`ids.npz`), atomically. A resumed
    run keeps the maps it was started with (its data was checked to be the same), so a resume that fails later
    leaves the run byte-identical (npz files carry timestamps)."""
    if not run.chief or run.resume:
        return
    with atomic_path(run.file(ID_MAPS)) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, user_ids=data.file_ids("user", np.arange(data.num_users)),
                     item_ids=data.file_ids("item", np.arange(data.num_items)))


def load_id_maps(run_dir, data):
    """(user_ids, item_ids) saved with the run (`save_id_maps`), else `data`'s; DatasetError when the
    saved maps differ from `data`'s (the ratings file changed since training)."""
    current = (data.file_ids("user", np.arange(data.num_users)), data.file_ids("item", np.arange(data.num_items)))
    path = Path(run_dir) / ID_MAPS
    if not path.exists():
        return current
    try:
        with np.load(path, allow_pickle=False) as saved:
            maps = saved["user_ids"], saved["item_ids"]
    except (OSError, ValueError, EOFError, KeyError, TypeError, AttributeError, zipfile.BadZipFile, zlib.error) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DatasetError(f"{path} is damaged ({reason}); it maps the run's ids to the ratings file's, so train a "
                           "new run") from None
    if any(len(a) != len(b) or a.dtype.kind != b.dtype.kind or np.any(a != b) for a, b in zip(maps, current)):
        raise DatasetError(f"the user/item ids in {data.source} differ from those the run was trained on "
                           f"({path}); pass the --data-dir it was trained on")
    return maps


def user_index(run_dir, data, user):
    """The dense index of the file's user id `user` (an int, or text: "3", "alice") and the run's dense -> file
    item ids (`load_id_maps`): (int, `(num_items,)`); UsageError when `data` has no such user."""
    user_ids, item_ids = load_id_maps(run_dir, data)
    key = str(user)
    if user_ids.dtype.kind in "iu":
        key = int(key) if re.fullmatch(r"\s*-?[0-9]+\s*", key) else None
    dense = int(np.searchsorted(user_ids, key)) if key is not None else len(user_ids)
    if dense >= len(user_ids) or user_ids[dense] != key:
        raise UsageError(f"--user {user} is not a user id of {data.source} "
                         f"(ids {user_ids[0]}..{user_ids[-1]}, {len(user_ids)} users)")
    return dense, item_ids


def recommend(ctx, data, scores_of, key="scores", digits=4):
    """`predict --user ID --top N` of a MovieLens recommender: the N items with the highest `scores_of(dense
    user)` `(num_items,)` among those the user has no interaction with in `data` (the run's training part),
    as {"user", "items" (the file's ids), key: their scores rounded to `digits`}. The user is checked first."""
    dense, item_ids = user_index(ctx.run_dir, data, ctx.args.user)
    scores = np.asarray(scores_of(dense))
    top = top_unrated(scores, data, dense, ctx.args.top)
    user = data.file_ids("user", np.array([dense]))[0].item()
    return {"user": user, "items": item_ids[top].tolist(), key: np.round(scores[top], digits).tolist()}


def top_unrated(scores, data, user, top):
    """The dense items with the `top` highest `scores` `(num_items,)` among those the dense `user` has no
    interaction with in `data`, best first (ties: the lower index): int `(min(top, unrated),)`."""
    rated = np.zeros(len(scores), bool)
    rated[data.items[data.users == user]] = True
    candidates = np.flatnonzero(~rated)
    return candidates[np.argsort(-np.asarray(scores)[candidates], kind="stable")[:top]]


def _latent_factors(seed, num_users, num_items, factors, std):
    """(rng, user factors p `(num_users, factors)`, item factors q `(num_items, factors)`) of a latent-factor
    ratings generator: a NumPy generator seeded with `seed` and its first draws, N(0, std^2) each."""
    rng = np.random.default_rng(seed)
    return rng, rng.normal(0, std, (num_users, factors)), rng.normal(0, std, (num_items, factors))


def _latent_ratings(rng, users, items, p, q, user_bias, item_bias, scale):
    """round(3.5 + biases + p_u . q_i + noise) on the release's scale (half stars when it starts at 0.5)."""
    raw = 3.5 + user_bias[users] + item_bias[items] + np.sum(p[users] * q[items], axis=1) \
        + rng.normal(0, 0.5, len(users))
    step = 0.5 if scale[0] == 0.5 else 1.0
    return np.clip(np.rint(raw / step) * step, *scale)


def generate_movielens(directory, num_users=300, num_items=400, per_user=(20, 80), factors=4, seed=0,
                       dataset="ml-100k"):
    """Write a MovieLens release's ratings file from a latent-factor model; return the directory.

    Users pick items with probability ~ softmax(popularity + user.item affinity), so popular
    items are rated often and implicit feedback is predictable; ratings are
    round(3.5 + user bias + item bias + user.item + noise) clipped to the release's scale;
    timestamps grow per user so the sequence-aware split has a well-defined latest item.
    ml-100k writes `u.data` + `u.info`; the other releases their own file and layout, with
    item ids that skip numbers (as the real ones do). Seeded; written only when absent.
    For sizes beyond a few million user x item cells, `generate_movielens_large`.
    """
    directory, release = Path(directory), RELEASES[dataset]
    if (directory / release.filename).exists():
        return directory
    rng, p, q = _latent_factors(seed, num_users, num_items, factors, 0.6)
    popularity = -1.1 * np.log(np.arange(1, num_items + 1))[rng.permutation(num_items)]
    user_bias = rng.normal(0, 0.3, num_users)
    item_bias = rng.normal(0, 0.4, num_items) + 0.15 * popularity / popularity.std()
    counts = rng.integers(per_user[0], per_user[1] + 1, num_users)
    logits = popularity[None, :] + 2.0 * p @ q.T
    # Gumbel top-k draws each user's items without replacement, all users at once.
    keys = logits + rng.gumbel(size=logits.shape)
    order = np.argsort(-keys, axis=1)
    take = np.arange(num_items)[None, :] < counts[:, None]
    users = np.repeat(np.arange(num_users), counts)
    items = order[take]
    ratings = _latent_ratings(rng, users, items, p, q, user_bias, item_bias, release.scale)
    start = rng.integers(880_000_000, 890_000_000, num_users)
    rank = np.arange(len(users)) - np.repeat(np.cumsum(counts) - counts, counts)
    timestamps = start[users] + 3600 * rank + rng.integers(0, 3000, len(users))
    shuffle = rng.permutation(len(users))
    directory.mkdir(parents=True, exist_ok=True)
    if dataset == "ml-100k":
        with atomic_path(directory / "u.info") as tmp:  # an interrupted generator leaves no half file behind
            Path(tmp).write_text(f"{num_users} users\n{num_items} items\n{len(users)} ratings\n")
        item_ids = np.arange(1, num_items + 1)
    else:
        item_ids = np.sort(rng.choice(np.arange(1, 2 * num_items + 1), num_items, replace=False))
    write_ratings(directory, dataset, [(users[shuffle] + 1, item_ids[items[shuffle]], ratings[shuffle],
                                        timestamps[shuffle])])
    return directory


def write_ratings(directory, dataset, chunks):
    """Write `directory/<release's ratings file>` from an iterable of (users, items, ratings, timestamps)
    chunks of file ids, in the release's layout (pyarrow's CSV writer: no loop per line); atomic."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    release = RELEASES[dataset]
    names = ("userId", "movieId", "rating", "timestamp")
    with atomic_path(Path(directory) / release.filename) as tmp:
        with open(tmp, "wb") as out:
            if release.header:
                out.write((",".join(names) + "\n").encode())
            for users, items, ratings, timestamps in chunks:
                columns = [pa.array(np.asarray(users, np.int64)), pa.array(np.asarray(items, np.int64)),
                           _rating_text(ratings), pa.array(np.asarray(timestamps, np.int64))]
                if release.sep == "::":  # 'a::b' is 'a', '', 'b' with ':' between
                    gap = pa.nulls(len(users), pa.string())
                    columns = [columns[0], gap, columns[1], gap, columns[2], gap, columns[3]]
                table = pa.table(columns, names=[f"c{i}" for i in range(len(columns))])
                pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False, quoting_style="none",
                                                               delimiter=":" if release.sep == "::" else release.sep))
    return Path(directory)


def _rating_text(ratings):
    """Ratings as the releases print them: "4" for whole stars, "3.5" for halves."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ratings = np.asarray(ratings, np.float64)
    if np.all(ratings == np.round(ratings)):
        return pa.array(ratings.astype(np.int64))
    return pc.cast(pa.array(ratings), pa.string())


def generate_movielens_large(directory, num_ratings, num_users, num_items, dataset="ml-25m", factors=8,
                             seed=0, chunk_users=20_000):
    """Write a large MovieLens-format ratings file (e.g. ML-25M's 25M ratings) in chunks of users.

    Items follow a Zipf-like popularity (each user's draws deduplicated), ratings the latent
    model of `generate_movielens`; memory is bounded by `chunk_users` users at a time, not by
    `num_ratings`. Seeded; written only when absent. Returns the directory.
    """
    directory, release = Path(directory), RELEASES[dataset]
    if (directory / release.filename).exists():
        return directory
    rng, p, q = _latent_factors(seed, num_users, num_items, factors, 0.4)
    user_bias, item_bias = rng.normal(0, 0.3, num_users), rng.normal(0, 0.4, num_items)
    popularity = 1.0 / np.arange(1, num_items + 1) ** 0.8
    cdf = np.cumsum(popularity[rng.permutation(num_items)])
    cdf /= cdf[-1]
    counts = np.maximum(1, rng.poisson(num_ratings / num_users, num_users))

    def chunks():
        for start in range(0, num_users, chunk_users):
            users = np.repeat(np.arange(start, min(start + chunk_users, num_users)), counts[start:start + chunk_users])
            items = np.minimum(np.searchsorted(cdf, rng.random(len(users))), num_items - 1)
            keys = np.sort(users.astype(np.int64) * num_items + items)
            keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
            users, items = keys // num_items, keys % num_items
            ratings = _latent_ratings(rng, users, items, p, q, user_bias, item_bias, release.scale)
            timestamps = 1_000_000_000 + rng.integers(0, 300_000_000, len(users))
            yield users + 1, items + 1, ratings, timestamps

    directory.mkdir(parents=True, exist_ok=True)
    return write_ratings(directory, dataset, chunks())


def movielens_dir(data_dir=None, demo=False, dataset="ml-100k"):
    """Directory holding the release's ratings file: --data-dir (or a `<name>.zip` in it), the cache,
    a download from GroupLens, or the demo generator (the release's layout, ML-100K's size)."""
    release = RELEASES[dataset]
    if demo:
        return generate_movielens(demo_cache_dir(DEMO_ROOT, dataset, version=GENERATOR_VERSION), dataset=dataset)
    if data_dir is not None:
        zipped = Path(data_dir) / f"{dataset}.zip"
        if find_layout(Path(data_dir), [release.filename]) is None and zipped.exists():
            target = cache_root() / dataset
            if find_layout(target, [release.filename]) is None:
                extract(zipped, target)
            data_dir = target
    return resolve_dataset(dataset, required=[release.filename], url=f"{MOVIELENS_URL}/{dataset}.zip",
                           sha1=release.sha1, data_dir=data_dir, hint="--demo")


def load_movielens(data_dir=None, demo=False, dataset="ml-100k"):
    """`read_movielens` of `movielens_dir(data_dir, demo, dataset)`."""
    return read_movielens(movielens_dir(data_dir, demo, dataset), dataset)

