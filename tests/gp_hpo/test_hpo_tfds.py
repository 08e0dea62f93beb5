"""gp_hpo.hpo's fashion_mnist objective from TFDS (`--tfds fashion_mnist`): the same subset as the IDX files of the
same images, and the TFDS flags' one-line errors before a study is written."""
import gzip
import json

import numpy as np
import pytest

from gp_hpo import hpo
from gp_hpo.hpo import objectives
from tests.cli_helpers import one_line, run

tfds = pytest.importorskip("tensorflow_datasets")


def _write_idx(path, array):
    """`array` (uint8) as an IDX file of unsigned bytes, gzipped (Fashion-MNIST's format)."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_tfds_subset_is_the_files_subset(tmp_path, monkeypatch):
    monkeypatch.setenv(objectives.TFDS_ENV, json.dumps({"name": "fashion_mnist", "data_dir": str(tmp_path / "t")}))
    monkeypatch.setattr(objectives, "FASHION_TRAIN", 40)  # a small subset of a small mock, as 4,000 of 60,000
    monkeypatch.setattr(objectives, "FASHION_VAL", 20)
    count = 67
    with tfds.testing.mock_data(num_examples=count):
        from_tfds = objectives.fashion_mnist_subset()
        examples = list(tfds.as_numpy(tfds.load("fashion_mnist", split="train")))
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.stack([e["image"][..., 0] for e in examples]))
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.asarray([e["label"] for e in examples]))
    monkeypatch.delenv(objectives.TFDS_ENV)
    from_files = objectives.fashion_mnist_subset(tmp_path)
    assert [a.shape for a in from_tfds] == [(40, 28, 28, 1), (40,), (20, 28, 28, 1), (20,)]
    for a, b in zip(from_tfds, from_files):
        np.testing.assert_array_equal(a, b)


def test_tfds_flag_errors_write_no_study(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(objectives.TFDS_ENV, "")  # restored (unset) after the test
    code, _, err = run(hpo.main, ["run", "--tfds", "fashion_mnist", "--objective", "gp_hpo.hpo.objectives:branin",
                                  "--study-dir", "s"], capsys)
    assert code == 2 and not (tmp_path / "s").exists()
    one_line(err, "--tfds fashion_mnist feeds the fashion_mnist objective, not gp_hpo.hpo.objectives:branin")
    code, _, err = run(hpo.main, ["run", "--tfds", "fashion_mnist", "--tfds-dir", tmp_path / "none",
                                  "--study-dir", "s"], capsys)
    assert code == 1 and not (tmp_path / "s").exists()
    one_line(err, "TFDS dataset fashion_mnist is not prepared in", "tfds build fashion_mnist --data_dir")
