import gzip
import math
from pathlib import Path

import numpy as np
import pytest

from common.data import shared_data_dir
from common.errors import DatasetError
from gp_hpo.hpo import objectives
from gp_hpo.hpo.space import ConfigSpace

SHARED = Path(shared_data_dir() or "/nonexistent") / "fashion-mnist"


def curve(fn, config, max_epochs=9):
    reports = []
    fn({**config, "max_epochs": max_epochs, "seed": 0}, lambda e, err: reports.append((e, err)) or True)
    return reports


def test_analytic_minima_and_epoch_resource():
    for x0, x1 in ((-math.pi, 12.275), (math.pi, 2.275), (9.42478, 2.475)):
        assert objectives.branin_value(x0, x1) == pytest.approx(0.397887, abs=1e-5)
    best = [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573]
    assert objectives.hartmann6_value(best) == pytest.approx(objectives.HARTMANN6_MIN, abs=1e-4)
    reports = curve(objectives.branin, {"x0": math.pi, "x1": 2.275})
    assert [e for e, _ in reports] == list(range(1, 10))
    errors = np.array([err for _, err in reports])
    assert np.all(np.diff(errors) < 0) and errors[-1] == pytest.approx(0.397887 + 20 * 2.0 ** -8, abs=1e-5)
    # the curve does not depend on max_epochs (successive halving retrains with fewer epochs)
    assert curve(objectives.branin, {"x0": 1.0, "x1": 2.0}, 3) == curve(objectives.branin, {"x0": 1.0, "x1": 2.0})[:3]


def test_objectives_stop_when_report_says_so():
    calls = []
    objectives.hartmann6({**{f"x{i}": 0.5 for i in range(6)}, "max_epochs": 9, "seed": 0},
                         lambda e, err: calls.append(e) or e < 3)
    assert calls == [1, 2, 3]


def test_default_spaces_are_valid():
    for fn in (objectives.branin, objectives.hartmann6, objectives.demo, objectives.fashion_mnist):
        ConfigSpace(fn.space)
    assert objectives.load_objective("gp_hpo.hpo.objectives:branin") is objectives.branin


def test_demo_data_is_offline_and_seeded():
    a, b = objectives.demo_data(), objectives.demo_data()
    assert a[0].shape == (1000, 10) and a[2].shape == (500, 10) and set(np.unique(a[1])) == set(range(5))
    np.testing.assert_array_equal(a[0], b[0])


def test_idx_reader_errors(tmp_path):
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(bad, "wb") as f:
        f.write(bytes([0, 0, 8, 3]) + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + bytes(100))
    with pytest.raises(DatasetError, match="truncated: header says \\[10, 28, 28\\], found 100 bytes"):
        objectives._read_idx(bad, 3)
    with pytest.raises(DatasetError, match="train-labels-idx1-ubyte.gz not found"):
        objectives.fashion_mnist_dir(tmp_path)


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/fashion-mnist is absent")
def test_fashion_mnist_subset_reads_the_real_files():
    x, y, xv, yv = objectives.fashion_mnist_subset(SHARED)
    assert x.shape == (4000, 28, 28, 1) and xv.shape == (2000, 28, 28, 1) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and np.bincount(y, minlength=10).min() > 300


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/fashion-mnist is absent")
def test_fashion_mnist_objective_learns(monkeypatch):
    monkeypatch.setenv(objectives.DATA_DIR_ENV, str(SHARED))
    reports = curve(objectives.fashion_mnist, {"learning_rate": 0.1, "batch_size": 64}, 3)
    assert len(reports) == 3 and reports[-1][1] < 0.45  # chance is 0.9; measured 0.35
