"""recsys.ctr: the book's CTR files, the field vocabulary and the generator."""
import numpy as np
import pytest

from common.errors import DatasetError
from recsys import ctr


def test_ctr_reader_vocabulary_and_errors(tmp_path):
    rows = ["1\ta\tx", "0\ta\ty", "0\ta\tx", "1\tb\tx", "0\ta\tz"]
    (tmp_path / "f.csv").write_text("\n".join(rows) + "\n")
    labels, raw = ctr.read_ctr_file(tmp_path / "f.csv", fields=2)
    assert labels.tolist() == [1, 0, 0, 1, 0]
    vocab = ctr.FieldVocabulary(raw, threshold=2)
    assert vocab.field_dims == [2, 2]  # field 0: {a} + rare bucket; field 1: {x} + rare bucket
    assert vocab.encode(raw).tolist() == [[0, 2], [0, 3], [0, 2], [1, 2], [0, 3]]
    assert vocab.encode(np.array([["q", "x"]])).tolist() == [[1, 2]]  # unseen -> bucket
    (tmp_path / "g.csv").write_text("1\ta\tx\n0\ta\n")
    with pytest.raises(DatasetError, match="line 2: expected 3 fields"):
        ctr.read_ctr_file(tmp_path / "g.csv", fields=2)
    (tmp_path / "h.csv").write_text("1\ta\tx\n2\ta\tx\n")
    with pytest.raises(DatasetError, match="line 2: label '2' is not 0 or 1"):
        ctr.read_ctr_file(tmp_path / "h.csv", fields=2)


def test_generated_ctr_round_trip(tmp_path):
    train, test = ctr.load_ctr(ctr.generate_ctr(tmp_path / "ctr", rows=(2000, 500)))
    assert train.features.shape == (2000, ctr.CTR_FIELDS) and len(test) == 500
    assert train.features.max() < train.num_features
    offsets = np.concatenate([[0], np.cumsum(train.field_dims)[:-1]])
    assert np.all(train.features >= offsets) and np.all(train.features < offsets + train.field_dims)
    assert 0.1 < train.labels.mean() < 0.6
