"""nlp.pretrained: the embedding table's rows are the vectors file's rows, OOV counted by hand,
the dimension check, and the vectorised padding helper it feeds."""
import numpy as np
import pytest

from common.errors import UsageError
from nlp.embeddings import load_vectors
from nlp.pretrained import embedding_matrix
from nlp.text import Vocab, encode_padded


def _vectors(tmp_path):
    path = tmp_path / "vec.txt"
    path.write_text("the 0.1 0.2 0.3\ncat 1 2 3\nsat -1 0.5 2\nmat 4 4 4\n")
    return path


def test_rows_equal_the_file_and_oov_is_counted(tmp_path):
    path = _vectors(tmp_path)
    vocab = Vocab([["The", "cat", "sat", "on", "the", "zzz", "zzz", "on", "on"]], reserved_tokens=["<pad>"])
    table = embedding_matrix(vocab, path, 3, seed=0)
    file = load_vectors(path)
    for token in ("cat", "sat", "the", "The"):  # lookups are case-insensitive, as GloVe is lower-case
        np.testing.assert_array_equal(table.matrix[vocab[token]], file.vector(token.lower()))
    assert table.matrix.shape == (len(vocab), 3) and table.matrix.dtype == np.float32
    np.testing.assert_array_equal(table.matrix[vocab["<pad>"]], 0.0)
    # by hand: vocabulary tokens on, the, zzz, The, cat, sat; unknown to the file: on (3x), zzz (2x)
    assert (table.known, table.oov) == (4, 2)
    assert table.oov_share == pytest.approx(5 / 9)
    assert table.oov_examples == ["on", "zzz"]
    assert table.report() == {"embeddings_known": 4, "embeddings_oov": 2, "embeddings_oov_share": 0.5556}
    # OOV rows are seeded draws of the file's scale, not zeros
    again = embedding_matrix(vocab, path, 3, seed=0)
    np.testing.assert_array_equal(again.matrix, table.matrix)
    assert np.abs(table.matrix[vocab["on"]]).sum() > 0


def test_dimension_mismatch_is_one_line(tmp_path):
    vocab = Vocab([["cat"]], reserved_tokens=["<pad>"])
    with pytest.raises(UsageError, match=r"have 3 dimensions but --embedding-dim is 50; pass --embedding-dim 3"):
        embedding_matrix(vocab, _vectors(tmp_path), 50)


def test_encode_padded_truncates_and_pads():
    vocab = Vocab([["a", "b", "b"]], reserved_tokens=["<pad>"])  # <unk> 0, <pad> 1, b 2, a 3
    ids = encode_padded(vocab, [["b", "a", "z"], [], ["a"] * 6 + ["b"]], 4, pad_id=1)
    assert ids.tolist() == [[2, 3, 0, 1], [1, 1, 1, 1], [3, 3, 3, 3]] and ids.dtype == np.int32
    assert encode_padded(vocab, [[], []], 2, 1).tolist() == [[1, 1], [1, 1]]


def test_real_glove_rows(shared_data):
    path = shared_data / "glove.6b.50d_top20k" / "vec.txt"
    vocab = Vocab([["the", "movie", "xqzv"]], reserved_tokens=["<pad>"])
    table = embedding_matrix(vocab, path, 50)
    assert (table.known, table.oov) == (2, 1)
    assert table.matrix[vocab["the"]][:2] == pytest.approx([0.418, 0.24968])
