"""The book's click-through-rate data (`ctr/train.csv`, `test.csv`) and its offline generator.

CTR data is an integer matrix of global feature ids `(rows, fields)` with per-field offsets, the
layout FM and DeepFM read through one shared embedding table (`CTRData`); `FieldVocabulary`
maps raw values to those ids. The streamed Criteo reader is `recsys.criteo`, which shares
`CTRData`, `FieldVocabulary` and the generator's click model `ctr_logits`.
"""
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.data import demo_cache_dir, resolve_dataset
from common.errors import DatasetError
from common.files import atomic_path
from recsys import DEMO_ROOT

CTR_URL = "http://d2l-data.s3-accelerate.amazonaws.com/ctr.zip"
CTR_SHA1 = "e18327c48c8e8e5c23da714dd614e390d369843f"
CTR_FIELDS = 34
CTR_THRESHOLD = 4
# Version of what the demo generator here writes (`generate_ctr`), part of its cache folder name
# (`recsys-demo/ctr-v1`): bump it whenever the bytes it writes change, so sets cached by the older
# code are not reused. `ctr_logits` also feeds recsys.criteo.generate_criteo: bump its
# GENERATOR_VERSION too when it changes.
GENERATOR_VERSION = 1


@dataclass
class CTRData:
    """Click data: `features` int32 `(rows, fields)` of global feature ids, `labels` float32 `(rows,)`.

    Field f's ids lie in `offsets[f] .. offsets[f] + field_dims[f] - 1`; the last id of each
    field is the bucket for values rarer than the threshold (or unseen in training).
    """

    features: np.ndarray
    labels: np.ndarray
    field_dims: list = field(default_factory=list)
    vocabulary: "FieldVocabulary" = None  # the raw values -> ids map the features were encoded with

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

    def save(self, path):
        """Write the kept values of every field into the `.npz` file `path` (no pickles), atomically."""
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **{f"field_{i}": v for i, v in enumerate(self.values)})

    @classmethod
    def load(cls, path):
        """The vocabulary `save` wrote into `path`; DatasetError when the file is damaged."""
        try:
            with np.load(path, allow_pickle=False) as saved:
                return cls.from_values([saved[f"field_{i}"] for i in range(len(saved.files))])
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
            raise DatasetError(f"{path} is damaged ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                               "it maps raw values to the model's features, so train a new run") from None

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


def _line_of_bad_value(column, converter):
    for i, value in enumerate(column):
        try:
            converter(value)
        except ValueError:
            return i
    return None


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
    return (CTRData(vocab.encode(raw_train), y_train, vocab.field_dims, vocab),
            CTRData(vocab.encode(raw_test), y_test, vocab.field_dims, vocab))


def raw_rows(lines, fields, what):
    """Lines of a CTR file's own format -> str `(rows, fields)` of raw values.

    A line holds `fields` values, or a label and then `fields` values (the label is dropped), separated by
    tabs (or by commas in a line without a tab); blank lines and a `label,...` header line are skipped.
    DatasetError names the first line `what` (e.g. a file) with another number of values.
    """
    rows = []
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\r\n")
        if not line.strip() or (number == 1 and line.startswith("label,")):
            continue
        values = line.split("\t" if "\t" in line else ",")
        if len(values) not in (fields, fields + 1):
            raise DatasetError(f"{what} line {number}: expected {fields} values (optionally after a label), "
                               f"got {len(values)}")
        rows.append(values[-fields:])
    if not rows:
        raise DatasetError(f"{what} holds no rows")
    return np.array(rows, dtype=str).reshape(len(rows), fields)


def click_arguments(parser):
    """`predict --row LINE ... | --data FILE`: the rows to score, as lines of the run's data format."""
    parser.add_argument("--row", nargs="+", default=[], metavar="LINE",
                        help="a row as a line of the training data: the fields (book's CTR: 34 values; Criteo: 13 "
                             "integers and 26 hex categoricals, empty for missing), optionally after the label, "
                             "tab-separated (or comma-separated)")
    parser.add_argument("--data", type=Path, metavar="FILE",
                        help="score every line of FILE (the same format as --row, e.g. Criteo's test.txt)")


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
        with atomic_path(directory / name) as tmp:  # an interrupted generator leaves no half file behind
            Path(tmp).write_text("\n".join("\t".join(r) for r in part) + "\n")
    return directory


def ctr_dir(data_dir=None, demo=False):
    """Directory holding the book's `train.csv`/`test.csv`: --data-dir, cache, download, or the demo generator."""
    if demo:
        return generate_ctr(demo_cache_dir(DEMO_ROOT, "ctr", version=GENERATOR_VERSION))
    return resolve_dataset("ctr", required=["train.csv", "test.csv"], url=CTR_URL, sha1=CTR_SHA1,
                           data_dir=data_dir, hint="--demo")
