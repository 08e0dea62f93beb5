"""Recommender datasets: MovieLens (every GroupLens release), the book's CTR files, offline generators.

MovieLens ratings files are parsed by pandas' C reader in chunks (`read_rating_columns`),
ids remapped to dense indices (`Interactions.user_ids`/`item_ids` map them back). The
streamed Criteo reader is `recsys.criteo`. Everything after parsing is NumPy. Interaction
data is an `Interactions` record of parallel arrays (zero-based user and item ids, ratings,
timestamps); the splits, the implicit-feedback index (`UserItemIndex`), negative sampling
and Caser's sequence windows are vectorized over all interactions (no Python loop over
users or items). CTR data is an integer
matrix of global feature ids `(rows, fields)` with per-field offsets, the layout FM and
DeepFM read through one shared embedding table.
"""
import dataclasses
import itertools
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common import cli
from common.data import cache_root, demo_cache_dir, extract, find_layout, resolve_dataset
from common.errors import DatasetError, UsageError
from common.files import atomic_path

ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
ML100K_SHA1 = "cd4dcac4241c8a4ad7badc7ca635da8a69dddb83"
CTR_URL = "http://d2l-data.s3-accelerate.amazonaws.com/ctr.zip"
CTR_SHA1 = "e18327c48c8e8e5c23da714dd614e390d369843f"
RATING_SCALE = (1, 5)
CTR_FIELDS = 34
CTR_THRESHOLD = 4
DEMO_ROOT = "recsys-demo"
# Version of what the demo generators here write (`generate_movielens`, `generate_ctr`), part of
# their cache folder names (`recsys-demo/<release>-v1`, `recsys-demo/ctr-v1`): bump it whenever the
# bytes they write change, so sets cached by the older code are not reused. `ctr_logits` also feeds
# recsys.criteo.generate_criteo: bump its GENERATOR_VERSION too when it changes.
GENERATOR_VERSION = 1


# --------------------------------------------------------------------------- MovieLens
@dataclass
class Interactions:
    """Parallel arrays of interactions with zero-based (dense) ids.

    users, items: int32 `(n,)`; ratings: float32 `(n,)` (1 for implicit feedback);
    timestamps: int64 `(n,)` (seconds); `num_users`/`num_items` size the id spaces.
    `user_ids`/`item_ids` give the file's id of each dense index (None: dense index + 1),
    `rating_scale` the release's (lowest, highest) rating.
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


@dataclass
class MovieLensConfig(cli.TrainConfig):
    """The `--dataset` flag of every MovieLens trainer (their Configs add the model's own)."""

    dataset: str = field(default="ml-100k", metadata={"choices": list(RELEASES), "help": (
        "MovieLens release: --data-dir holds its ratings file (u.data, ratings.dat or ratings.csv) or <name>.zip")})


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
    """Write the dense-index -> file-id maps of `data` into the run directory (`ids.npz`), atomically."""
    if not run.chief:
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
    if any(len(a) != len(b) or np.any(a != b) for a, b in zip(maps, current)):
        raise DatasetError(f"the user/item ids in {data.source} differ from those the run was trained on "
                           f"({path}); pass the --data-dir it was trained on")
    return maps


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
        _write_text(directory / "u.info", f"{num_users} users\n{num_items} items\n{len(users)} ratings\n")
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


def _write_text(path, text):
    """Write a generated file atomically (an interrupted generator leaves no half file behind)."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


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


def _line_of_bad_value(column, converter):
    for i, value in enumerate(column):
        try:
            converter(value)
        except ValueError:
            return i
    return None


# --------------------------------------------------------------------------- splits
def _check_split(train, test, how):
    for name, part in (("training", train), ("test", test)):
        if len(part) == 0:
            raise DatasetError(f"{how} split of {train.source or 'the data'} left the {name} set empty "
                               f"({len(train) + len(test)} interactions); use more data or another --test-ratio")
    return train, test


def split_random(data, test_ratio=0.1, seed=0):
    """Random split: `round(test_ratio * n)` interactions (seeded) go to the test set."""
    if not 0 < test_ratio < 1:
        raise UsageError(f"--test-ratio must be in (0, 1), got {test_ratio}")
    n_test = int(round(test_ratio * len(data)))
    order = np.random.default_rng(seed).permutation(len(data))
    is_test = np.zeros(len(data), bool)
    is_test[order[:n_test]] = True
    return _check_split(data.subset(~is_test), data.subset(is_test), "random")


def latest_per_user(data):
    """Boolean mask of each user's latest interaction (largest timestamp, ties: last in file order)."""
    order = np.lexsort((np.arange(len(data)), data.timestamps, data.users))
    users = data.users[order]
    last = np.ones(len(order), bool)
    last[:-1] = users[1:] != users[:-1]
    mask = np.zeros(len(data), bool)
    mask[order[last]] = True
    return mask


def split_seq_aware(data):
    """Sequence-aware split (the book's seq-aware mode): each user's latest interaction is the test item."""
    is_test = latest_per_user(data)
    return _check_split(data.subset(~is_test), data.subset(is_test), "sequence-aware")


VALIDATION_STREAM = 1


def validation_rng(seed):
    """The generator of validation draws: a `SeedSequence` child of `seed` (spawn key
    `VALIDATION_STREAM`), unrelated to the test split's stream and to `epoch_rng(seed, e)`."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(VALIDATION_STREAM,)))


def hold_out_validation(train, mode, val_ratio=0.05, seed=0):
    """Carve a validation set out of the training interactions -> (fit, validation) `Interactions`.

    mode "random": `round(val_ratio * n)` training interactions drawn by `validation_rng(seed)`.
    mode "seq-aware": each user's latest training interaction (the second-to-last overall,
    one step before the test item), except for users with a single training interaction,
    who keep it for training.
    """
    if mode == "random":
        if not 0 < val_ratio < 1:
            raise UsageError(f"--val-ratio must be in (0, 1), got {val_ratio}")
        n_val = int(round(val_ratio * len(train)))
        order = validation_rng(seed).permutation(len(train))
        is_val = np.zeros(len(train), bool)
        is_val[order[:n_val]] = True
    elif mode == "seq-aware":
        counts = np.bincount(train.users, minlength=train.num_users)
        is_val = latest_per_user(train) & (counts[train.users] > 1)
    else:
        raise UsageError(f"unknown split {mode!r}; choose random or seq-aware")
    fit, val = train.subset(~is_val), train.subset(is_val)
    for name, part in (("training", fit), ("validation", val)):
        if len(part) == 0:
            raise DatasetError(f"holding out validation data from {len(train)} training interactions of "
                               f"{train.source or 'the data'} left the {name} set empty; use more data"
                               + (" or another --val-ratio" if mode == "random" else ""))
    return fit, val


def split(data, mode, test_ratio=0.1, seed=0):
    """`split_random` for mode "random", `split_seq_aware` for "seq-aware"."""
    if mode == "random":
        return split_random(data, test_ratio, seed)
    if mode == "seq-aware":
        return split_seq_aware(data)
    raise UsageError(f"unknown split {mode!r}; choose random or seq-aware")


# --------------------------------------------------------------------------- implicit feedback
class UserItemIndex:
    """The set of (user, item) pairs a user interacted with, for membership tests and masks.

    Stored as sorted keys `user * num_items + item` (CSR order), so `contains` is one
    `searchsorted` over any number of pairs and `mask` fills a `(batch, num_items)` matrix
    with one scatter.
    """

    def __init__(self, users, items, num_users, num_items):
        self.num_users, self.num_items = int(num_users), int(num_items)
        keys = np.unique(np.asarray(users, np.int64) * self.num_items + np.asarray(items, np.int64))
        self.keys = keys
        self.counts = np.bincount(keys // self.num_items, minlength=self.num_users)
        self.indptr = np.concatenate([[0], np.cumsum(self.counts)])

    @classmethod
    def of(cls, data):
        return cls(data.users, data.items, data.num_users, data.num_items)

    def contains(self, users, items):
        """Boolean array: has `users[j]` interacted with `items[j]` (any broadcastable shapes)."""
        keys = np.asarray(users, np.int64) * self.num_items + np.asarray(items, np.int64)
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return self.keys[pos] == keys

    def mask(self, users):
        """`(len(users), num_items)` bool matrix, True where the user interacted with the item."""
        users = np.asarray(users, np.int64)
        counts = self.counts[users]
        rows = np.repeat(np.arange(len(users)), counts)
        starts = np.repeat(self.indptr[users], counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        out = np.zeros((len(users), self.num_items), bool)
        out[rows, self.keys[starts + offsets] % self.num_items] = True
        return out


def sample_negatives(index, users, rng, num=1):
    """Items each user has not interacted with, uniformly at random: int32 `(len(users), num)`.

    Rejection sampling in rounds over all still-rejected draws at once. Raises
    `DatasetError` when some user has interacted with every item.
    """
    users = np.asarray(users, np.int64)
    full = index.counts[users] >= index.num_items
    if full.any():
        raise DatasetError(f"user {users[full][0]} interacted with every item; no negatives to sample")
    out = rng.integers(0, index.num_items, (len(users), num))
    bad = index.contains(users[:, None], out)
    while bad.any():
        out[bad] = rng.integers(0, index.num_items, int(bad.sum()))
        bad = index.contains(users[:, None], out)
    return out.astype(np.int32)


def sequence_windows(data, length, pad):
    """Caser's training examples: for every interaction, the user's `length` previous items.

    Returns (users `(n,)`, windows `(n, length)`, targets `(n,)`), windows ordered oldest to
    newest and left-padded with `pad` where a user has fewer earlier items. Interactions are
    ordered per user by timestamp (ties: file order). The first interaction of each user
    (an all-padding window) is dropped.
    """
    order = np.lexsort((np.arange(len(data)), data.timestamps, data.users))
    users, items = data.users[order], data.items[order]
    first = np.ones(len(order), bool)
    first[1:] = users[1:] != users[:-1]
    start = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
    back = np.arange(len(order))[:, None] - np.arange(length, 0, -1)[None, :]
    valid = back >= start[:, None]
    windows = np.where(valid, items[np.clip(back, 0, None)], pad).astype(np.int32)
    keep = ~first
    return users[keep], windows[keep], items[keep]


def latest_windows(data, users, length, pad):
    """Each given user's last `length` items in `data` (oldest first, left-padded): `(len(users), length)`."""
    order = np.lexsort((np.arange(len(data)), data.timestamps, data.users))
    sorted_users, items = data.users[order], data.items[order]
    end = np.searchsorted(sorted_users, users, side="right")
    begin = np.searchsorted(sorted_users, users, side="left")
    idx = end[:, None] - np.arange(length, 0, -1)[None, :]
    valid = idx >= begin[:, None]
    return np.where(valid, items[np.clip(idx, 0, None)], pad).astype(np.int32)


# --------------------------------------------------------------------------- CTR
@dataclass
class CTRData:
    """Click data: `features` int32 `(rows, fields)` of global feature ids, `labels` float32 `(rows,)`.

    Field f's ids lie in `offsets[f] .. offsets[f] + field_dims[f] - 1`; the last id of each
    field is the bucket for values rarer than the threshold (or unseen in training).
    """

    features: np.ndarray
    labels: np.ndarray
    field_dims: list = field(default_factory=list)

    @property
    def num_features(self):
        return int(sum(self.field_dims))

    def __len__(self):
        return len(self.labels)


class FieldVocabulary:
    """Per-field maps from raw string values to ids, fitted on training rows.

    Values seen fewer than `threshold` times share one bucket (the book's
    `feat_threshold`), which also receives values never seen in training.
    """

    def __init__(self, raw, threshold=CTR_THRESHOLD):
        values = []
        for column in raw.T:
            uniq, counts = np.unique(column, return_counts=True)
            values.append(uniq[counts >= threshold])
        self._set(values)

    @classmethod
    def from_values(cls, values):
        """The vocabulary of per-field sorted arrays of the kept values (e.g. counted while
        streaming a file)."""
        vocabulary = cls.__new__(cls)
        vocabulary._set(values)
        return vocabulary

    def _set(self, values):
        self.values = list(values)
        self.field_dims = [len(v) + 1 for v in self.values]
        self.offsets = np.concatenate([[0], np.cumsum(self.field_dims)[:-1]]).astype(np.int64)

    def encode(self, raw):
        """`(rows, fields)` raw strings -> `(rows, fields)` int32 global ids."""
        if raw.shape[1] != len(self.values):
            raise DatasetError(f"rows have {raw.shape[1]} fields, the vocabulary {len(self.values)}")
        out = np.empty(raw.shape, np.int32)  # ids are written as int32 directly: no int64 copy per block
        for f, known in enumerate(self.values):  # loop over fields only
            pos = np.minimum(np.searchsorted(known, raw[:, f]), max(len(known) - 1, 0))
            hit = (known[pos] == raw[:, f]) if len(known) else np.zeros(len(raw), bool)
            out[:, f] = np.where(hit, pos, len(known)) + self.offsets[f]
        return out


def _check_labels(labels, path):
    try:
        values = labels.astype(np.float64)
    except ValueError:
        i = _line_of_bad_value(labels, float)
        raise DatasetError(f"{path} line {i + 1}: label {str(labels[i])!r} is not 0 or 1") from None
    bad = np.flatnonzero((values != 0) & (values != 1))
    if bad.size:
        raise DatasetError(f"{path} line {bad[0] + 1}: label {str(labels[bad[0]])!r} is not 0 or 1")
    return values.astype(np.float32)


def _split_lines(path, sep, fields, what):
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path} not found")
    lines = path.read_text(encoding="latin-1").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DatasetError(f"{path} holds no rows; expected {what}")
    rows = [line.split(sep) for line in lines]
    widths = np.fromiter((len(r) for r in rows), np.int64, len(rows))
    bad = np.flatnonzero(widths != fields)
    if bad.size:
        i = bad[0]
        raise DatasetError(f"{path} line {i + 1}: expected {fields} fields ({what}), got {widths[i]}")
    return np.array(rows, dtype=str)


def read_ctr_file(path, fields=CTR_FIELDS):
    """The book's advertising file: tab separated, label (0/1) then `fields` categorical values.

    Returns (labels float32 `(rows,)`, raw str `(rows, fields)`).
    """
    table = _split_lines(path, "\t", fields + 1, f"label then {fields} tab-separated categorical fields")
    return _check_labels(table[:, 0], path), table[:, 1:]


def load_ctr(directory, threshold=CTR_THRESHOLD):
    """The book's `ctr/` directory (`train.csv`, `test.csv`) -> (train, test) `CTRData`, vocabulary from train."""
    directory = Path(directory)
    y_train, raw_train = read_ctr_file(directory / "train.csv")
    y_test, raw_test = read_ctr_file(directory / "test.csv")
    vocab = FieldVocabulary(raw_train, threshold)
    return (CTRData(vocab.encode(raw_train), y_train, vocab.field_dims),
            CTRData(vocab.encode(raw_test), y_test, vocab.field_dims))


def ctr_logits(codes, seed=0, cardinality=None):
    """The generator's true click logits for integer codes `(rows, fields)`.

    logit = -4 + per-value weights of the first 10 fields (logistic part)
    + sum over pairs of fields 0-7 of <v_f, v_g> with rank-3 factors (what a 2-way FM adds)
    + 2.5 |sum of per-value weights of fields 8-10| (not a 2-way function: an FM only
    approximates it through the square, a ReLU network can represent it);
    the remaining fields are noise. `cardinality` is the number of codes per field
    (largest code + 1 when None).
    """
    cardinality = cardinality or int(codes.max()) + 1
    rng = np.random.default_rng(seed + 1)
    f_idx = np.arange(10)[None, :]
    linear = rng.normal(0, 0.35, (10, cardinality))[f_idx, codes[:, :10]].sum(1)
    v = rng.normal(0, 0.45, (8, cardinality, 3))[np.arange(8)[None, :], codes[:, :8]]  # (rows, 8, 3)
    pairwise = 0.5 * (np.square(v.sum(1)) - np.square(v).sum(1)).sum(1)
    u = rng.normal(0, 1.0, (3, cardinality))[np.arange(3)[None, :], codes[:, 8:11]].sum(1)
    return -4.0 + linear + pairwise + 2.5 * np.abs(u)


def generate_ctr(directory, rows=(50000, 10000), fields=CTR_FIELDS, cardinality=12, seed=0):
    """Write the book's `train.csv`/`test.csv` format (tab separated label + `fields` values); return the directory.

    Feature values are drawn with a popularity skew; clicks are Bernoulli(sigmoid(`ctr_logits`)).
    Seeded; files are written only when absent.
    """
    directory = Path(directory)
    if (directory / "train.csv").exists() and (directory / "test.csv").exists():
        return directory
    rng = np.random.default_rng(seed)
    total = sum(rows)
    probs = 1.0 / np.arange(1, cardinality + 1) ** 0.6
    codes = rng.choice(cardinality, size=(total, fields), p=probs / probs.sum())
    logits = ctr_logits(codes, seed, cardinality)
    labels = (rng.random(total) < 1.0 / (1.0 + np.exp(-logits))).astype(int)
    tokens = np.char.add(np.char.add(np.arange(fields).astype(str)[None, :], "_"), codes.astype(str))
    table = np.concatenate([labels.astype(str)[:, None], tokens], axis=1)
    directory.mkdir(parents=True, exist_ok=True)
    for name, part in (("train.csv", table[:rows[0]]), ("test.csv", table[rows[0]:])):
        _write_text(directory / name, "\n".join("\t".join(r) for r in part) + "\n")
    return directory


def ctr_dir(data_dir=None, demo=False):
    """Directory holding the book's `train.csv`/`test.csv`: --data-dir, cache, download, or the demo generator."""
    if demo:
        return generate_ctr(demo_cache_dir(DEMO_ROOT, "ctr", version=GENERATOR_VERSION))
    return resolve_dataset("ctr", required=["train.csv", "test.csv"], url=CTR_URL, sha1=CTR_SHA1,
                           data_dir=data_dir, hint="--demo")


def load_split(data_dir=None, demo=False, mode="random", test_ratio=0.1, seed=0, dataset="ml-100k"):
    """MovieLens (or the demo data) split by `split(data, mode, ...)` -> (train, test) `Interactions`."""
    return split(load_movielens(data_dir, demo, dataset), mode, test_ratio, seed)


@dataclass
class Splits:
    """The three parts a recommender run uses (all `Interactions` over the same id spaces).

    `fit` trains the model, `val` scores it every epoch, `test` once at the end; `train`
    = fit + val is everything known before the test interactions (what the test ranking
    excludes and what a sequence model reads as history at test time).
    """

    train: Interactions
    fit: Interactions
    val: Interactions
    test: Interactions


def load_splits(data_dir=None, demo=False, mode="random", test_ratio=0.1, val_ratio=0.05, seed=0,
                dataset="ml-100k"):
    """`load_split`, then `hold_out_validation` of its training part -> `Splits`."""
    train, test = load_split(data_dir, demo, mode, test_ratio, seed, dataset)
    fit, val = hold_out_validation(train, mode, val_ratio, seed)
    return Splits(train, fit, val, test)


def split_rows(data, ratio, seed=0):
    """Split `CTRData` rows at random -> (rest, held out), `round(ratio * rows)` held out.

    Drawn by `validation_rng(seed)`; used to carve the validation rows out of a CTR
    training file (the field vocabulary stays the training file's, so the validation rows
    only share which values are frequent, not labels).
    """
    n_out = int(round(ratio * len(data)))
    if not 1 <= n_out < len(data):
        raise DatasetError(f"{len(data)} training rows cannot give a validation set with --val-ratio {ratio}")
    order = validation_rng(seed).permutation(len(data))
    out, rest = np.sort(order[:n_out]), np.sort(order[n_out:])
    part = lambda idx: CTRData(data.features[idx], data.labels[idx], data.field_dims)  # noqa: E731
    return part(rest), part(out)
