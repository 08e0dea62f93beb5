"""Criteo click logs at full size: one streaming pass into a cached columnar form, then tf.data in blocks.

The Kaggle display-advertising `train.txt` (45 million rows, about 11 GB) is tab separated:
a 0/1 label, 13 integer counts (`I1..I13`, may be empty) and 26 categorical values
(`C1..C26`, 8 hex digits or empty). `prepare_criteo` reads it once in chunks with pyarrow's
streaming CSV reader (memory is bounded by the chunk, not the file):

1. each chunk's values become int64 tokens (integers through the Criteo winners' log
   transform v > 2 -> floor(ln(v)^2), hex categoricals as their 32-bit value, empty fields
   one NA token), each row is assigned to the fit / validation / test part by a seeded draw, and the per-field
   value counts of the training rows (fit + validation) are merged into running counts;
2. values seen at least `threshold` times get dense per-field ids (the rest share the field's
   last id), and the cached tokens are encoded into `.npy` files of global feature ids,
   one per part, appended block by block.

Everything is written into a temporary directory renamed into place, so an interrupted pass
leaves nothing a later run could take for a complete cache. `block_dataset` reads a part
back with bounded memory: blocks of rows in a seeded order, each shuffled in NumPy and cut
into batches, and `replicas` gives each multi-worker replica its piece of every batch.
"""
import contextlib
import hashlib
import json
import mmap
import os
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from common.data import cache_root, demo_cache_dir, epoch_rng
from common.errors import DatasetError
from common.files import atomic_path
from recsys import DEMO_ROOT
from recsys.ctr import CTR_THRESHOLD, CTRData, FieldVocabulary, ctr_logits

INT_FIELDS = 13
CAT_FIELDS = 26
FIELDS = INT_FIELDS + CAT_FIELDS
COLUMNS = ["label"] + [f"I{i}" for i in range(1, INT_FIELDS + 1)] + [f"C{i}" for i in range(1, CAT_FIELDS + 1)]
NA = np.int64(-(2 ** 62))  # the token of an empty field
# Version of what `generate_criteo` writes, part of the demo file's cache folder (`demo_file`): bump
# it whenever the bytes it writes change, here, through `recsys.ctr.ctr_logits`, or by a new demo row
# count, so a demo file cached by the older code is not reused.
GENERATOR_VERSION = 1
PARTS = ("fit", "val", "test")
VOCABULARY = "vocabulary.npz"
CACHE_VERSION = 2  # 2: the vocabulary is kept (vocabulary.npz)
# pyarrow reads this many bytes at a time (about 17k Kaggle lines). Its streaming reader parses up to
# 32 blocks ahead of the consumer, so the block size bounds the read-ahead: 32 MiB blocks held up to
# 1 GiB of the file (first pass over 3M generated rows: 1,696 MB peak RSS, 4 MiB blocks 1,018 MB, as fast)
BLOCK_BYTES = 1 << 22


# --------------------------------------------------------------------------- parsing one chunk
def _hex_values(column, field, first_line):
    """A pyarrow string column of 8-digit hex values (or nulls) -> int64 tokens; NA for empty.

    Vectorised over the Arrow buffers: the 8 bytes of every value are gathered into a
    `(rows, 8)` matrix and mapped to nibbles through a lookup table.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    lengths = pc.fill_null(pc.binary_length(column), 0).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero((lengths != 0) & (lengths != 8))
    if bad.size:
        raise DatasetError(f"line {first_line + bad[0]}: categorical {COLUMNS[1 + field]} "
                           f"{column[int(bad[0])].as_py()!r} is not 8 hex digits")
    offsets = np.frombuffer(column.buffers()[1], np.int32, len(column) + 1, column.offset * 4)
    data = np.frombuffer(column.buffers()[2], np.uint8) if column.buffers()[2] is not None else np.zeros(0, np.uint8)
    present = lengths == 8
    starts = offsets[:-1][present]
    digits = _NIBBLES[data[starts[:, None] + np.arange(8)[None, :]]]  # (present rows, 8)
    if (digits < 0).any():
        row = np.flatnonzero(present)[np.flatnonzero((digits < 0).any(axis=1))[0]]
        raise DatasetError(f"line {first_line + row}: categorical {COLUMNS[1 + field]} "
                           f"{column[int(row)].as_py()!r} is not 8 hex digits")
    out = np.full(len(column), NA, np.int64)
    out[present] = digits.astype(np.int64) @ (16 ** np.arange(7, -1, -1, dtype=np.int64))
    return out


_NIBBLES = np.full(256, -1, np.int64)
for _i, _c in enumerate(b"0123456789abcdef"):
    _NIBBLES[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _NIBBLES[_c] = 10 + _i


def _int_tokens(column, field, first_line):
    """A pyarrow string column of integers (or nulls) -> int64 tokens v > 2 -> floor(ln(v)^2), else v; NA
    (the log transform of the Criteo-winning solution, also pytorch-fm's)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        values = pc.cast(column, pa.float64())  # integers; the DeepCTR sample writes them as 1.0
    except pa.ArrowInvalid:
        ok = pc.fill_null(pc.match_substring_regex(column, r"^-?[0-9]+(\.[0-9]*)?$"), True)
        row = int(np.argmin(ok.to_numpy(zero_copy_only=False)))
        raise DatasetError(f"line {first_line + row}: integer {COLUMNS[1 + field]} {column[row].as_py()!r} "
                           "is not a number") from None
    empty = values.is_null().to_numpy(zero_copy_only=False)
    v = values.fill_null(0).to_numpy(zero_copy_only=False)
    tokens = np.where(v > 2, np.floor(np.log(np.maximum(v, 1.0)) ** 2), v).astype(np.int64)
    return np.where(empty, NA, tokens)


def _labels(column, first_line):
    labels = column.to_numpy(zero_copy_only=False)
    ok = (labels == "0") | (labels == "1")
    if not ok.all():
        row = int(np.argmin(ok))
        raise DatasetError(f"line {first_line + row}: label {labels[row]!r} is not 0 or 1")
    return (labels == "1").astype(np.int8)


def _read_batches(path):
    """Yield (first line number, pyarrow RecordBatch of strings) over the file, streaming.

    A line with the wrong number of fields raises `DatasetError` naming it. The DeepCTR
    sample's CSV form (a `label,I1,...` header, comma separated) is read too.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with open(path, "rb") as f:
        head = f.readline()
    if not head:
        raise DatasetError(f"{path} is empty; expected tab-separated lines of a label, 13 integer and 26 "
                           "categorical fields (Criteo's train.txt)")
    csv = head.startswith(b"label,")
    invalid = {}

    def on_invalid(row):
        invalid.setdefault("row", row)
        return "error"

    options = dict(
        read_options=pacsv.ReadOptions(column_names=COLUMNS, skip_rows=1 if csv else 0, block_size=BLOCK_BYTES,
                                       use_threads=True),
        parse_options=pacsv.ParseOptions(delimiter="," if csv else "\t", invalid_row_handler=on_invalid,
                                         quote_char=False),
        convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in COLUMNS},
                                             strings_can_be_null=True, quoted_strings_can_be_null=True))
    line = 2 if csv else 1
    try:
        for batch in pacsv.open_csv(path, **options):  # the first block is parsed when the reader opens
            yield line, batch
            line += batch.num_rows
    except pa.ArrowInvalid as e:
        row = invalid.get("row")
        if row is None:
            raise DatasetError(f"{path}: cannot parse ({e})") from None
        number = row.number if row.number is not None else _line_number_of(path, row.text)
        raise DatasetError(f"{path} line {number}: expected {len(COLUMNS)} fields (label, 13 integer and 26 "
                           f"categorical), got {row.actual_columns}") from None


def _line_number_of(path, text):
    """The 1-based number of the first line of `path` equal to `text` (pyarrow's multi-threaded
    reader reports a bad row's text without its number), searching 1 MiB at a time; "?" if absent."""
    target, count, tail = b"\n" + text.encode("latin-1").rstrip(b"\r\n"), 0, b""
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            data = b"\n" + tail + block.replace(b"\r\n", b"\n")  # the leading newline ends the previous line
            for end in (b"\n",) + ((b"",) if len(block) < 1 << 20 else ()):
                at = data.find(target + end)
                if at >= 0:
                    return count + data.count(b"\n", 1, at + 1) + 1
            last = data.rfind(b"\n")
            count += data.count(b"\n", 1, last + 1)
            tail = data[last + 1:]
    return "?"


def tokens_of_batch(batch, first_line):
    """One RecordBatch of strings -> (labels int8 `(rows,)`, tokens int64 `(rows, 39)`)."""
    labels = _labels(batch.column(0), first_line)
    tokens = np.empty((batch.num_rows, FIELDS), np.int64)
    for f in range(FIELDS):  # 39 columns, each vectorised
        column = batch.column(1 + f)
        tokens[:, f] = (_int_tokens if f < INT_FIELDS else _hex_values)(column, f, first_line)
    return labels, tokens


def raw_tokens(raw):
    """Raw values `(rows, 39)` str (13 integers, 26 hex categoricals, "" for empty) -> int64 tokens `(rows, 39)`,
    as `prepare_criteo` makes them; DatasetError names the first bad value ("line N" counts the rows from 1)."""
    import pyarrow as pa

    columns = [pa.array(np.full(len(raw), "0"))] + [pa.array(raw[:, f], mask=raw[:, f] == "") for f in range(FIELDS)]
    return tokens_of_batch(pa.record_batch(columns, names=COLUMNS), 1)[1]


# --------------------------------------------------------------------------- counting
class StreamingCounts:
    """Per-field value counts merged chunk by chunk into sorted `values[f]` / `counts[f]` int64 arrays.

    Each chunk's (value, count) pairs wait in a pending list; they are merged (one sort) once
    they outnumber the merged values (and 65,536), so the work stays O(n log n) over the whole
    stream however many distinct values a field has, and the pending pairs never hold more
    than about the distinct values. (With a floor of 2^20 pairs per field, the 39 fields'
    pending lists grew by about 35 bytes a row up to some 650 MB: the first pass's peak RSS
    went from 957 MB at 1M generated rows to 1,271 MB at 10M.)
    """

    def __init__(self, fields):
        self._merged = [(np.zeros(0, np.int64), np.zeros(0, np.int64)) for _ in range(fields)]
        self._pending = [[] for _ in range(fields)]

    @staticmethod
    def _unique_counts(values, weights=None):
        """Sorted distinct `values` and their summed `weights` (1 each when None)."""
        if not len(values):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        order = np.argsort(values, kind="stable")
        values = values[order]
        first = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1]]))
        weights = np.ones(len(values), np.int64) if weights is None else weights[order]
        return values[first], np.add.reduceat(weights, first)

    def add(self, tokens):
        """Count the rows of `tokens` `(rows, fields)`."""
        for f in range(tokens.shape[1]):
            self._pending[f].append(self._unique_counts(tokens[:, f]))
            if sum(len(v) for v, _ in self._pending[f]) > max(len(self._merged[f][0]), 1 << 16):
                self._merge(f)

    def _merge(self, f):
        parts = [self._merged[f], *self._pending[f]]
        self._merged[f] = self._unique_counts(np.concatenate([v for v, _ in parts]),
                                              np.concatenate([c for _, c in parts]))
        self._pending[f] = []

    def counts(self, f):
        """(sorted values, counts) of field f."""
        if self._pending[f]:
            self._merge(f)
        return self._merged[f]

    def vocabulary(self, threshold):
        """Per field, the sorted values seen at least `threshold` times."""
        out = []
        for f in range(len(self._merged)):
            values, counts = self.counts(f)
            out.append(values[counts >= threshold])
        return out


# --------------------------------------------------------------------------- the cache
@dataclass
class CriteoCache:
    """A prepared Criteo file: per part, memory-mapped `features` int32 `(rows, 39)` and `labels` float32."""

    directory: Path
    field_dims: list
    rows: dict

    @property
    def num_features(self):
        return int(sum(self.field_dims))

    def part(self, name):
        """`recsys.ctr.CTRData` of one part ("fit", "val" or "test") over read-only memory maps."""
        features = np.load(self.directory / f"{name}_features.npy", mmap_mode="r")
        labels = np.load(self.directory / f"{name}_labels.npy", mmap_mode="r")
        return CTRData(features, labels, self.field_dims, self.vocabulary)

    @cached_property
    def vocabulary(self):
        """The per-field raw tokens -> ids map the parts were encoded with (`FieldVocabulary`)."""
        return FieldVocabulary.load(self.directory / VOCABULARY)


def _cache_key(path, threshold, test_ratio, val_ratio, seed):
    stat = Path(path).stat()
    text = json.dumps([str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, threshold, test_ratio, val_ratio,
                       seed, CACHE_VERSION])
    return hashlib.sha1(text.encode()).hexdigest()[:16]


ROW_GROUP = 1 << 16


def row_uniforms(seed, start, rows):
    """Uniform draws for rows `start .. start + rows - 1` of a file, fixed by `seed` and the row
    index alone (one `SeedSequence` per group of `ROW_GROUP` rows), so the split of a file does
    not depend on how it was cut into blocks."""
    first, last = start // ROW_GROUP, (start + rows - 1) // ROW_GROUP
    draws = np.concatenate([np.random.default_rng(np.random.SeedSequence([int(seed), 16, g])).random(ROW_GROUP)
                            for g in range(first, last + 1)])
    offset = start - first * ROW_GROUP
    return draws[offset:offset + rows]


def _assign_parts(u, test_ratio, val_ratio):
    """0 = fit, 1 = validation, 2 = test, from per-row uniforms `u`: test with `test_ratio`,
    validation with `val_ratio` of the rest."""
    return np.where(u < test_ratio, 2, np.where(u < test_ratio + val_ratio * (1 - test_ratio), 1, 0)).astype(np.int8)


def _cache_dir(cache_dir=None):
    """Where prepared Criteo caches live: `cache_dir`, else `criteo-cache` in the dataset cache."""
    return Path(cache_dir or cache_root() / "criteo-cache")


def prepare_criteo(path, threshold=CTR_THRESHOLD, test_ratio=0.1, val_ratio=0.1, seed=0, cache_dir=None,
                   progress=None):
    """Stream a Criteo file into the cache (once per file, threshold, ratios and seed) -> `CriteoCache`.

    Pass 1 reads the text in blocks and writes int64 tokens per block into a scratch folder,
    counting the training rows' values; pass 2 encodes the tokens into per-part `.npy` files.
    Peak memory is pyarrow's read-ahead (up to 32 blocks of `BLOCK_BYTES`), a block's tokens and
    the per-field counts (the distinct values), never the file. Rows go to the test part with
    probability `test_ratio` and to the validation part with `val_ratio` of the rest
    (`row_uniforms`: seeded by row index). `progress(rows)` is called after each block of pass 1.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path} not found; pass the Criteo file with --data-dir and --data-file")
    target = _cache_dir(cache_dir) / f"{path.name}-{_cache_key(path, threshold, test_ratio, val_ratio, seed)}"
    if (target / "meta.json").exists():
        return _open(target)
    with atomic_path(target, directory=True) as tmp:
        counts = StreamingCounts(FIELDS)
        part_rows = np.zeros(3, np.int64)
        blocks = 0
        for blocks, (first_line, batch) in enumerate(_read_batches(path), start=1):
            try:
                labels, tokens = tokens_of_batch(batch, first_line)
            except DatasetError as e:
                raise DatasetError(f"{path} {e}") from None
            parts = _assign_parts(row_uniforms(seed, int(part_rows.sum()), len(labels)), test_ratio, val_ratio)
            counts.add(tokens[parts != 2])
            part_rows += np.bincount(parts, minlength=3)
            np.save(tmp / f"tokens-{blocks:06d}.npy", tokens)
            np.save(tmp / f"labels-{blocks:06d}.npy", labels)
            np.save(tmp / f"parts-{blocks:06d}.npy", parts)
            if progress is not None:
                progress(int(part_rows.sum()))
        if not blocks or part_rows.sum() == 0:
            raise DatasetError(f"{path} holds no rows; expected label, 13 integer and 26 categorical fields")
        for name, n in zip(PARTS, part_rows):
            if n == 0:
                raise DatasetError(f"{path}: {int(part_rows.sum())} rows left the {name} part empty; use more rows "
                                   "or other --test-ratio/--val-ratio")
        vocabulary = FieldVocabulary.from_values(counts.vocabulary(threshold))
        del counts
        with contextlib.ExitStack() as files:  # every part file is closed, also when pass 2 fails
            outputs = {name: (files.enter_context(_npy_writer(tmp / f"{name}_features.npy", np.int32,
                                                              (int(n), FIELDS))),
                              files.enter_context(_npy_writer(tmp / f"{name}_labels.npy", np.float32, (int(n),))))
                       for name, n in zip(PARTS, part_rows)}
            for b in range(1, blocks + 1):
                tokens = np.load(tmp / f"tokens-{b:06d}.npy")
                labels, parts = np.load(tmp / f"labels-{b:06d}.npy"), np.load(tmp / f"parts-{b:06d}.npy")
                encoded = vocabulary.encode(tokens)
                for p, name in enumerate(PARTS):
                    rows = parts == p
                    outputs[name][0].write(encoded[rows].tobytes())
                    outputs[name][1].write(labels[rows].astype(np.float32).tobytes())
                for kind in ("tokens", "labels", "parts"):
                    os.remove(tmp / f"{kind}-{b:06d}.npy")
        vocabulary.save(tmp / VOCABULARY)
        meta = {"source": str(path.resolve()), "rows": {name: int(n) for name, n in zip(PARTS, part_rows)},
                "field_dims": vocabulary.field_dims, "threshold": threshold, "test_ratio": test_ratio,
                "val_ratio": val_ratio,
                "seed": seed, "version": CACHE_VERSION}
        (tmp / "meta.json").write_text(json.dumps(meta))
    return _open(target)


def _npy_writer(path, dtype, shape):
    """An open file with the `.npy` header of an array `shape` of `dtype` written; the caller appends
    the rows' bytes in order (plain writes: no memory map, so resident memory stays one block)."""
    f = open(path, "wb")
    try:
        np.lib.format.write_array_header_2_0(f, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                 "fortran_order": False, "shape": shape})
    except BaseException:
        f.close()
        raise
    return f


def _open(directory):
    meta = json.loads((Path(directory) / "meta.json").read_text())
    return CriteoCache(Path(directory), meta["field_dims"], meta["rows"])


def clear_cache(cache_dir=None):
    """Delete every prepared Criteo cache (e.g. before a benchmark's cold first pass)."""
    root = _cache_dir(cache_dir)
    if root.exists():
        shutil.rmtree(root)


# --------------------------------------------------------------------------- reading back
def block_dataset(part, batch_size, seed, epoch, block_rows=1 << 16, replicas=(0, 1, 1)):
    """tf.data batches of a memory-mapped `CTRData` part with bounded memory.

    The rows are cut into blocks of `block_rows`; each epoch visits the blocks in an order
    drawn from `epoch_rng(seed, epoch)`, shuffles each block in NumPy and cuts the stream into
    global batches of `batch_size` (`((batch, 39) int32, (batch,) float32)`; rows left over at a
    block's end are carried into the next, the last batch is short). Iterating the dataset again
    replays the epoch (the generator is drawn afresh from the seed).

    `replicas=(first, count, total)`: the batches of one input pipeline of a multi-replica strategy
    (`common.distribute.distribute_own_input`). Every global batch is cut into `total` equal pieces
    (the short last batch as evenly as possible, left out when it has fewer rows than `total`) and
    this pipeline yields pieces `first .. first + count - 1` of each, so the replicas together train on
    exactly the global batches of one replica, in the same order. Each pipeline reads every block but
    gathers only its own rows. Memory: two blocks (`read_rows`).
    """
    import tensorflow as tf

    first, count, total = replicas
    if batch_size % total:
        raise ValueError(f"a batch of {batch_size} does not split into {total} equal pieces")
    piece = batch_size // total
    n = len(part.labels)
    blocks = np.arange(0, n, block_rows)
    fields = part.features.shape[1]
    # this pipeline's rows of a run of full batches: offsets within each global batch
    mine = np.arange(first * piece, (first + count) * piece)

    def batches():
        rng = epoch_rng(seed, epoch)  # here, not outside: every iteration replays the same epoch
        carry_x, carry_y = np.zeros((0, fields), np.int32), np.zeros(0, np.float32)
        for b in rng.permutation(len(blocks)):
            start = blocks[b]
            x = read_rows(part.features, start, start + block_rows)
            y = read_rows(part.labels, start, start + block_rows)
            shuffle = rng.permutation(len(y))
            c = len(carry_y)
            full = (c + len(y)) // batch_size * batch_size
            # positions in the stream carry + shuffled block that are this pipeline's, in full batches
            take = (np.arange(0, full, batch_size)[:, None] + mine[None, :]).reshape(-1)
            from_carry, from_block = take[take < c], shuffle[take[take >= c] - c]
            xs = np.concatenate([carry_x[from_carry], x[from_block]])
            ys = np.concatenate([carry_y[from_carry], y[from_block]])
            for i in range(0, len(ys), piece):
                yield xs[i:i + piece], ys[i:i + piece]
            rest = shuffle[max(full - c, 0):]
            carry_x = np.concatenate([carry_x[full:], x[rest]])
            carry_y = np.concatenate([carry_y[full:], y[rest]])
        r = len(carry_y)
        if r >= total:  # the short last batch, as `total` nearly equal pieces
            bounds = np.arange(total + 1) * (r // total) + np.minimum(np.arange(total + 1), r % total)
            for j in range(first, first + count):
                yield carry_x[bounds[j]:bounds[j + 1]], carry_y[bounds[j]:bounds[j + 1]]

    signature = (tf.TensorSpec((None, fields), tf.int32), tf.TensorSpec((None,), tf.float32))
    steps = n // batch_size + (n % batch_size >= total)
    dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
    return dataset.apply(tf.data.experimental.assert_cardinality(steps * count)).prefetch(tf.data.AUTOTUNE)


def read_rows(array, start, stop):
    """Rows `start:stop` of `array` as a new array. A memory map's rows are read from its file with plain
    reads: slicing the map would leave every page read so far resident in this process (one epoch over the
    8.1M rows of a 10M-row file took the pipeline's peak RSS from 861 MB to 1,973 MB)."""
    if not (isinstance(array, np.memmap) and isinstance(array.base, mmap.mmap)):  # a view: its own offset
        return np.asarray(array[start:stop])
    stop = min(stop, len(array))
    if stop <= start:
        return np.zeros((0, *array.shape[1:]), array.dtype)
    row_bytes = array.dtype.itemsize * int(np.prod(array.shape[1:], dtype=np.int64))
    with open(array.filename, "rb") as f:
        f.seek(array.offset + start * row_bytes)
        return np.fromfile(f, array.dtype, (stop - start) * row_bytes // array.dtype.itemsize).reshape(
            stop - start, *array.shape[1:])


def predict_blocks(predict_fn, features, block_rows=1 << 18):
    """`predict_fn(block)` over `features` (e.g. a memory map), one block of rows at a time: `(rows,)`."""
    return np.concatenate([np.asarray(predict_fn(read_rows(features, s, s + block_rows))).reshape(-1)
                           for s in range(0, max(len(features), 1), block_rows)])


# --------------------------------------------------------------------------- generator
def generate_criteo(path, rows, seed=0, chunk_rows=500_000, cardinality=2000):
    """Write `rows` lines in the Kaggle `train.txt` layout (label, 13 integers, 26 hex categoricals, tab
    separated, about 20% of integers and 10% of categoricals empty); return the path.

    Clicks are Bernoulli(sigmoid(`recsys.ctr.ctr_logits`)) of per-field codes drawn with a
    popularity skew (codes of the first 11 fields decide the click; the integers carry
    the codes of fields 0-12 through a monotone map, the categoricals those of all fields
    shifted by a per-field hex salt). Written in chunks through pyarrow's CSV writer (no
    loop per line), so memory stays bounded for any `rows`. Seeded; atomic.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    path = Path(path)
    rng = np.random.default_rng(seed)
    probs = 1.0 / np.arange(1, cardinality + 1) ** 1.1
    cdf = np.cumsum(probs) / probs.sum()
    salts = rng.integers(0, 2 ** 31, CAT_FIELDS)
    hex4 = np.array([f"{v:04x}" for v in range(1 << 16)])  # every 16-bit half, formatted once
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        for start in range(0, rows, chunk_rows):
            n = min(chunk_rows, rows - start)
            codes = np.minimum(np.searchsorted(cdf, rng.random((n, CAT_FIELDS))), cardinality - 1)
            logits = ctr_logits(codes[:, :12] % 12, seed, 12)
            labels = (rng.random(n) < 1.0 / (1.0 + np.exp(-logits))).astype(np.int64)
            columns = [pa.array(labels)]
            for f in range(INT_FIELDS):
                values = np.floor(np.expm1(codes[:, f] / 200.0) * 3).astype(np.int64)
                columns.append(pa.array(values, mask=rng.random(n) < 0.2))
            for f in range(CAT_FIELDS):
                value = (codes[:, f] * 2654435761 + salts[f]) & 0xFFFFFFFF  # distinct codes, distinct values
                words = np.strings.add(hex4[value >> 16], hex4[value & 0xFFFF])
                columns.append(pa.array(words, mask=rng.random(n) < 0.1))
            table = pa.table(columns, names=COLUMNS)
            pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none"))
    return path


def demo_file():
    """Where `--demo` keeps its generated `train.txt`: `recsys-demo/criteo-v<GENERATOR_VERSION>/` in the cache."""
    return demo_cache_dir(DEMO_ROOT, "criteo", version=GENERATOR_VERSION) / "train.txt"
