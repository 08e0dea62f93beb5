"""Tokenisation and the vocabulary every nlp model shares (word embeddings now, BERT and NLI later).

`tokenize` splits lines into word (or character) tokens; `Vocab` maps tokens to indices with
a minimum frequency, reserved tokens and `<unk>` at index 0, and keeps the token counts that
subsampling and negative sampling need.

    vocab = Vocab(tokenize(lines), min_freq=10, reserved_tokens=["<pad>"])
    ids = vocab[["the", "cat"]]          # -> [i, j]; unknown tokens map to vocab.unk (0)
"""
import collections
import itertools
import sys
from pathlib import Path

import numpy as np

from common.errors import DatasetError

UNK = "<unk>"
# Tokens that stand for no word (padding, unknown, sequence marks, BERT's specials): never a
# neighbour, an analogy answer or a word the model "knows". Compared lower-cased.
RESERVED_TOKENS = frozenset({UNK, "<pad>", "<bos>", "<eos>", "<s>", "</s>", "<mask>", "<cls>", "<sep>",
                             "[pad]", "[unk]", "[cls]", "[sep]", "[mask]"})


def is_reserved(token):
    """Whether `token` is a reserved token of `RESERVED_TOKENS` (any case): `<unk>`, `[CLS]`, ..."""
    return token.lower() in RESERVED_TOKENS


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


def coverage(vocab, tokens):
    """How much of `tokens` (a flat token list) the vocabulary `vocab` (a `Vocab`) knows:
    `{"words", "unknown_words", "known_fraction"}`, a token being known when it is in `vocab`
    and not reserved (`is_reserved`). `known_fraction` is 0.0 for no tokens."""
    known = sum(1 for t in tokens if t in vocab and not is_reserved(t))
    return {"words": len(tokens), "unknown_words": len(tokens) - known,
            "known_fraction": round(known / len(tokens), 4) if tokens else 0.0}


def warn_no_basis(what, words, vocabulary):
    """One line on stderr: none of the `words` words of `what` (e.g. "the review") is among the
    `vocabulary` words the model was trained on, so its answer has no basis."""
    print(f"warning: no word of {what} ({words} {'word' if words == 1 else 'words'}) is in the model's vocabulary "
          f"({vocabulary} tokens), so the answer has no basis; check the spelling and the language, or train on "
          "text like it", file=sys.stderr)


def _existing_file(path, what, hint):
    path = Path(path)
    if path.is_dir():
        raise DatasetError(f"{what} {path} is a folder, not a file; {hint}")
    if not path.is_file():
        raise DatasetError(f"{what} {path} does not exist")
    return path


def _check_bytes(path, data, hint, partial=False):
    """`DatasetError` unless `data` (a file's bytes, or with `partial` its first bytes, where a
    character cut at the end is fine) is UTF-8 without NUL bytes."""
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DatasetError(f"{path} is binary, not text (a NUL byte at byte {nul}); {hint}")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        if not (partial and e.reason == "unexpected end of data"):
            raise DatasetError(f"{path} is not UTF-8 text (byte {e.start}); {hint}") from None


def check_text(path, what="text file", hint="pass a plain UTF-8 text file", head=1 << 16):
    """`path` as a Path after checking that its first `head` bytes are text: one-line
    `DatasetError` (naming `what`, the byte and `hint`) when the file is missing, a folder, or
    binary there (not UTF-8, or a NUL byte). For files too large to read twice (word vectors)."""
    path = _existing_file(path, what, hint)
    with open(path, "rb") as f:
        _check_bytes(path, f.read(head), hint, partial=True)
    return path


def read_lines(path, what="text file", hint="pass a plain UTF-8 text file"):
    """The lines of a UTF-8 text file; `DatasetError` (one line naming `what` and `hint`) when
    it is missing, a folder or binary (not UTF-8, or holding a NUL byte)."""
    path = _existing_file(path, what, hint)
    data = path.read_bytes()
    _check_bytes(path, data, hint)
    return data.decode("utf-8").splitlines()
