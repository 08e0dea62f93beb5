"""Pretrained word vectors as the initial embedding table of a model's vocabulary.

`embedding_matrix(vocab, path, dim)` reads a vectors file in GloVe text format (the real
GloVe files, or `vectors.txt` of an `nlp.word2vec` / `nlp.glove` run) with
`nlp.embeddings.load_vectors` and returns a `(len(vocab), dim)` table whose row i is the
vector of `vocab.idx_to_token[i]` (lookups case-insensitive), with the tokens the file does
not know (out of vocabulary, OOV) counted and given small random rows; `<pad>` gets zeros.
NLI's decomposable attention and the sentiment models start from it (`--embeddings PATH`).
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.errors import UsageError
from nlp import embeddings

PAD = "<pad>"


@dataclass
class Pretrained:
    """An initial embedding table: `matrix` float32 `(vocab, dim)`; `known` / `oov`: how many
    vocabulary tokens (reserved ones excluded) the vectors file has / lacks; `oov_share`: the
    share of the corpus's token occurrences that are OOV (from `vocab.counts`, 0 when there are
    none); `oov_examples`: up to ten OOV tokens, most frequent first."""

    matrix: np.ndarray
    known: int
    oov: int
    oov_share: float
    oov_examples: list

    def report(self):
        """The numbers a run records: `embeddings_known`, `embeddings_oov`, `embeddings_oov_share`."""
        return {"embeddings_known": self.known, "embeddings_oov": self.oov,
                "embeddings_oov_share": round(self.oov_share, 4)}


def vectors_path(name):
    """The vectors file `name` names: one of the book's GloVe sets (`glove.6b.50d`, downloaded
    once) or a path to a file in GloVe / word2vec text format."""
    if name in embeddings.PRETRAINED:
        return embeddings.pretrained(name)
    return Path(name).expanduser()


def embedding_matrix(vocab, path, dim, seed=0, reserved=(PAD,)):
    """`Pretrained` table for `vocab` from the vectors file `path` (GloVe text format).

    The file's dimension must equal `dim` (else one-line `UsageError` naming both and the
    flag). Rows of tokens the file lacks, and of `<unk>`, are drawn from N(0, s^2) with s the
    standard deviation of the file's values (seeded by `seed`); rows of `reserved` tokens
    (`<pad>`) are zeros. Reserved tokens and `<unk>` are not counted as OOV.
    """
    vectors = embeddings.load_vectors(vectors_path(path))
    if vectors.dim != dim:
        raise UsageError(f"the vectors in {path} have {vectors.dim} dimensions but --embedding-dim is {dim}; "
                         f"pass --embedding-dim {vectors.dim}")
    tokens = vocab.idx_to_token
    rows = np.array([vectors.index.get(vectors._key(t), -1) for t in tokens], dtype=np.int64)
    special = np.isin(np.asarray(tokens, dtype=object), [vocab.to_tokens(vocab.unk), *reserved])
    rows[special] = -1
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0, float(vectors.matrix.std()), size=(len(tokens), dim)).astype(np.float32)
    found = rows >= 0
    matrix[found] = vectors.matrix[rows[found]]
    matrix[np.isin(np.asarray(tokens, dtype=object), list(reserved))] = 0.0
    missing = ~found & ~special
    counts = vocab.counts.astype(np.float64)
    total = counts[~special].sum()
    order = np.flatnonzero(missing)[np.argsort(-counts[missing], kind="stable")]
    return Pretrained(matrix, int(found.sum()), int(missing.sum()),
                      float(counts[missing].sum() / total) if total > 0 else 0.0,
                      [tokens[i] for i in order[:10]])


def initial_embeddings(config, vocab):
    """`Pretrained` for a model config with `embeddings` (path or name, '' for none),
    `embedding_dim` and `seed`; None when no vectors file is given."""
    if not config.embeddings:
        return None
    return embedding_matrix(vocab, config.embeddings, config.embedding_dim, config.seed)
