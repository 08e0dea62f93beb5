"""Tokenisation and the vocabulary every nlp model shares (word embeddings now, BERT and NLI later).

`tokenize` splits lines into word (or character) tokens; `Vocab` maps tokens to indices with
a minimum frequency, reserved tokens and `<unk>` at index 0, and keeps the token counts that
subsampling and negative sampling need.

    vocab = Vocab(tokenize(lines), min_freq=10, reserved_tokens=["<pad>"])
    ids = vocab[["the", "cat"]]          # -> [i, j]; unknown tokens map to vocab.unk (0)
"""
import collections
import itertools
from pathlib import Path

import numpy as np

from common.errors import DatasetError

UNK = "<unk>"


def tokenize(lines, token="word"):
    """Split each line into tokens: whitespace-separated words (`token="word"`) or characters
    (`token="char"`). Returns a list (one per line) of lists of strings."""
    if token == "word":
        return [line.split() for line in lines]
    if token == "char":
        return [list(line) for line in lines]
    raise ValueError(f"unknown token type {token!r}; use 'word' or 'char'")


def count_corpus(tokens):
    """`collections.Counter` of the tokens in a flat list or a list of token lists."""
    if tokens and isinstance(tokens[0], list):
        tokens = itertools.chain.from_iterable(tokens)
    return collections.Counter(tokens)


class Vocab:
    """Token <-> index table: `<unk>` is index 0, then `reserved_tokens`, then the tokens seen at
    least `min_freq` times, most frequent first (ties in alphabetical order, so the table is the
    same on every machine).

    `vocab[token]` / `vocab[list_of_tokens]` give indices (unknown tokens -> `vocab.unk`),
    `vocab.to_tokens(indices)` the reverse. `vocab.counts` is an int64 array `(len(vocab),)` of
    corpus counts aligned with the indices (reserved tokens and `<unk>` count what the corpus had
    of them, usually 0). `from_tokens(idx_to_token, counts)` rebuilds a saved table exactly.
    """

    def __init__(self, tokens=(), min_freq=0, reserved_tokens=()):
        counter = count_corpus(list(tokens))
        self.token_freqs = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
        specials = [UNK] + [t for t in reserved_tokens if t != UNK]
        kept = [t for t, c in self.token_freqs if c >= min_freq and t not in specials]
        self._set(specials + kept, [counter.get(t, 0) for t in specials + kept])

    @classmethod
    def from_tokens(cls, idx_to_token, counts=None):
        """A vocabulary with exactly this index order (e.g. read back from a run directory)."""
        vocab = cls.__new__(cls)
        vocab.token_freqs = []
        vocab._set(list(idx_to_token), counts if counts is not None else [0] * len(idx_to_token))
        return vocab

    def _set(self, idx_to_token, counts):
        self.idx_to_token = idx_to_token
        self.token_to_idx = {t: i for i, t in enumerate(idx_to_token)}
        self.counts = np.asarray(counts, dtype=np.int64)

    def __len__(self):
        return len(self.idx_to_token)

    def __contains__(self, token):
        return token in self.token_to_idx

    def __getitem__(self, tokens):
        if isinstance(tokens, (list, tuple)):
            return [self.token_to_idx.get(t, self.unk) for t in tokens]
        return self.token_to_idx.get(tokens, self.unk)

    def encode(self, tokens):
        """int32 array of the indices of a flat token list."""
        get, unk = self.token_to_idx.get, self.unk
        return np.fromiter((get(t, unk) for t in tokens), dtype=np.int32, count=len(tokens))

    def to_tokens(self, indices):
        if isinstance(indices, (list, tuple, np.ndarray)):
            return [self.idx_to_token[int(i)] for i in indices]
        return self.idx_to_token[int(indices)]

    @property
    def unk(self):
        return 0


def encode_padded(vocab, token_lists, length, pad_id):
    """int32 `(len(token_lists), length)` of vocabulary indices, each row truncated to `length`
    tokens and padded with `pad_id` on the right (as the book's `truncate_pad`).

    The kept tokens are looked up in one pass (`Vocab.encode`, a dict lookup each) and scattered
    into the matrix with array indexing.
    """
    lengths = np.fromiter((min(len(t), length) for t in token_lists), dtype=np.int64, count=len(token_lists))
    out = np.full((len(token_lists), length), pad_id, dtype=np.int32)
    flat = list(itertools.chain.from_iterable(tokens[:length] for tokens in token_lists))
    if not flat:
        return out
    ids = vocab.encode(flat)
    rows = np.repeat(np.arange(len(token_lists)), lengths)
    cols = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[rows, cols] = ids
    return out


def read_lines(path, what="text file", hint="pass a plain UTF-8 text file"):
    """The lines of a UTF-8 text file; `DatasetError` (one line naming `what` and `hint`) when
    it is missing or not UTF-8."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{what} {path} does not exist")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path} is not UTF-8 text (byte {e.start}); {hint}") from None
