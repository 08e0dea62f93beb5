"""fastText's character n-grams (the book's 14.6.1), hashed into a bucket table.

A word is wrapped in boundary marks (`<where>`) and cut into every n-gram with `min_n <= n <=
max_n`; each n-gram's row in the bucket table is its 32-bit FNV-1a hash (fastText's) modulo the
number of buckets. A word's vector is the mean of its own row and its n-gram rows, so a word
never seen in training still gets a vector from the n-grams it shares with known words.

A run trained with n-grams keeps its n-gram rows in `TABLE_FILE` (`SubwordVectors.save`), which
any reader of word vectors (`nlp.embeddings.load_run`) turns back into vectors for unknown words
with `SubwordVectors.load`, without knowing the trainer.
"""
import zipfile

import numpy as np

from common.errors import DatasetError, UsageError

TABLE_FILE = "subwords.npz"

FNV_OFFSET = 2166136261
FNV_PRIME = 16777619


def parse_range(text):
    """"3-6" -> (3, 6); "" -> None; UsageError for anything else."""
    if not text:
        return None
    try:
        low, high = (int(x) for x in str(text).split("-"))
    except ValueError:
        low = high = 0
    if not 1 <= low <= high:
        raise UsageError(f"--subwords must look like 3-6 (smallest-largest n-gram length), got {text!r}")
    return low, high


def char_ngrams(word, min_n=3, max_n=6):
    """The character n-grams of `<word>` for n in min_n..max_n, shortest first, in order of
    position (the whole `<word>` itself is not included: it has its own row)."""
    marked = f"<{word}>"
    return [marked[i:i + n] for n in range(min_n, max_n + 1) for i in range(len(marked) - n + 1)
            if marked[i:i + n] != marked]


def fnv1a_32(text):
    """32-bit FNV-1a hash of the UTF-8 bytes of `text` (fastText's n-gram hash)."""
    h = FNV_OFFSET
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * FNV_PRIME) & 0xFFFFFFFF
    return h


def ngram_buckets(word, min_n, max_n, buckets):
    """Bucket rows of `word`'s n-grams: int64 array."""
    return np.array([fnv1a_32(g) % buckets for g in char_ngrams(word, min_n, max_n)], dtype=np.int64)


def ngram_table(words, min_n, max_n, buckets):
    """Padded n-gram bucket rows of every word: `(ids (words, g) int32, mask (words, g) float32)`,
    `g` the largest n-gram count; padded slots point at bucket 0 with mask 0."""
    rows = [ngram_buckets(w, min_n, max_n, buckets) for w in words]
    width = max(1, max(len(r) for r in rows))
    ids = np.zeros((len(words), width), np.int32)
    mask = np.zeros((len(words), width), np.float32)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = r
        mask[i, :len(r)] = 1.0
    return ids, mask


class SubwordVectors:
    """Vectors of words from their character n-grams: `table` float32 `(buckets, dim)` holds the
    n-gram rows, `min_n..max_n` the n-gram lengths. Calling it with a word gives the mean of its
    n-gram rows `(dim,)`, or None for a word with no n-gram (what `nlp.embeddings.WordVectors`
    takes as `oov`)."""

    def __init__(self, table, min_n, max_n):
        self.table = np.asarray(table, np.float32)
        self.min_n, self.max_n = int(min_n), int(max_n)

    def __call__(self, word):
        rows = ngram_buckets(word, self.min_n, self.max_n, len(self.table))
        return self.table[rows].mean(axis=0) if len(rows) else None

    def save(self, path):
        """Write the table and the n-gram lengths to `path` (a `.npz` archive, atomically)."""
        from common.files import atomic_path

        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, table=self.table, ngram_range=np.array([self.min_n, self.max_n], np.int64))

    @classmethod
    def load(cls, path):
        """The `SubwordVectors` that `save` wrote to `path`; one-line `DatasetError` when it is damaged."""
        try:
            with np.load(path, allow_pickle=False) as archive:
                table, (min_n, max_n) = archive["table"], archive["ngram_range"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            table = min_n = max_n = None
        if table is None or table.ndim != 2 or not len(table) or not 1 <= min_n <= max_n:
            raise DatasetError(f"{path} is corrupt (not the n-gram table a --subwords run writes); "
                               "restore it or train a new run")
        return cls(table, min_n, max_n)
