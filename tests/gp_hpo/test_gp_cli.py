"""`python -m gp_hpo.gp fit|predict|plot`: the JSON, the run directory, and the one-line errors."""
import csv
import json

import numpy as np
import pytest

from gp_hpo.gp import book_data, main
from tests.cli_helpers import run


def _csv(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_fit_on_the_book_data_prints_every_hyperparameter_and_saves_the_model(capsys, tmp_path):
    code, out, err = run(main, ["fit", "--run-dir", "r", "--kernel", "matern52"], capsys)
    assert code == 0, err
    assert set(out) >= {"signal_std", "lengthscale", "noise_std", "log_marginal_likelihood", "n", "seconds"}
    assert out["n"] == 50 and abs(out["noise_std"] - 0.25) < 0.08
    for name in ("fit.png", "model.json", "data.npz", "config.json", "metrics.json"):
        assert (tmp_path / "r" / name).is_file(), name
    saved = json.loads((tmp_path / "r" / "model.json").read_text())
    assert saved["hyperparameters"]["lengthscale"] == pytest.approx(out["lengthscale"])


def test_predict_at_x_and_on_a_csv_with_y(capsys, tmp_path):
    assert run(main, ["fit", "--run-dir", "r", "--demo"], capsys)[0] == 0
    code, out, err = run(main, ["predict", "--run-dir", "r", "--x", "0.5,1,2.5"], capsys)
    assert code == 0, err
    assert len(out["mean"]) == len(out["std"]) == 3 and all(s > 0 for s in out["std"])
    X, y = book_data(n=40, seed=9)  # fresh noisy draws of the same function
    _csv(tmp_path / "test.csv", ["x", "y"], np.column_stack([X[:, 0], y]).tolist())
    code, out, err = run(main, ["predict", "--run-dir", "r", "--data", tmp_path / "test.csv"], capsys)
    assert code == 0, err
    # seed 0's fit puts noise_std at 0.19 (true 0.25), so 0.825 of new points fall in its 95% band;
    # the epistemic band alone (a predictive std without noise) would hold about a third
    assert out["rmse"] < 0.35 and out["coverage_95"] >= 0.75 and out["nlpd"] < 0.5
    rows = list(csv.DictReader(open(tmp_path / "r" / "predictions.csv")))
    assert len(rows) == 40 and set(rows[0]) == {"x", "mean", "std", "f_std", "y"}
    assert float(rows[0]["mean"]) == pytest.approx(out["mean"][0])


def test_fit_on_a_csv_with_column_choice_and_the_gpytorch_backend(capsys, tmp_path):
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0, 3, 60), rng.uniform(0, 3, 60)
    target = np.sin(2 * a) + 0.1 * rng.standard_normal(60)
    _csv(tmp_path / "d.csv", ["id", "a", "b", "target"], np.column_stack([np.arange(60), a, b, target]).tolist())
    argv = ["--data", tmp_path / "d.csv", "--x", "a,b", "--y", "target", "--restarts", 0]
    code, ours, err = run(main, ["fit", "--run-dir", "numpy", *argv], capsys)
    assert code == 0, err
    assert len(ours["lengthscale"]) == 2 and ours["lengthscale"][1] > 3 * ours["lengthscale"][0]
    code, theirs, err = run(main, ["fit", "--run-dir", "torch", "--backend", "gpytorch", *argv], capsys)
    assert code == 0, err
    assert theirs["log_marginal_likelihood"] == pytest.approx(ours["log_marginal_likelihood"], abs=0.05)
    code, out, err = run(main, ["predict", "--run-dir", "torch", "--x", "1,2;0.5,0.5"], capsys)
    assert code == 0, err
    assert out["mean"][0] == pytest.approx(np.sin(2.0), abs=0.15)


def test_plot_draws_the_fit_and_samples(capsys, tmp_path):
    assert run(main, ["fit", "--run-dir", "r", "--demo", "--kernel", "rbf + periodic"], capsys)[0] == 0
    code, out, err = run(main, ["plot", "--run-dir", "r", "--samples", 3], capsys)
    assert code == 0, err
    assert (tmp_path / "r" / "samples.png").stat().st_size > 1000


def _error(capsys, argv):
    code, out, err = run(main, argv, capsys)
    lines = err.strip().splitlines()
    assert code != 0 and out is None and len(lines) == 1, err
    return code, lines[0]


def test_one_line_errors(capsys, tmp_path):
    _csv(tmp_path / "noy.csv", ["x", "z"], [[1, 2]])
    _csv(tmp_path / "bad.csv", ["x", "y"], [[1, 2], [2, 3], ["3", "abc"]])
    _csv(tmp_path / "short.csv", ["x", "y"], [[1, 2], [2]])
    code, line = _error(capsys, ["fit", "--run-dir", "e1", "--kernel", "rbf + * periodic"])
    assert code == 2 and "kernel expression 'rbf + * periodic': expected a kernel name at column 7" in line
    code, line = _error(capsys, ["fit", "--run-dir", "e2", "--kernel", "gaussian"])
    assert code == 2 and "unknown kernel 'gaussian'" in line
    code, line = _error(capsys, ["fit", "--run-dir", "e3", "--data", tmp_path / "noy.csv"])
    assert code == 1 and "missing column 'y' (columns: x, z" in line
    code, line = _error(capsys, ["fit", "--run-dir", "e4", "--data", tmp_path / "bad.csv"])
    assert code == 1 and "bad.csv line 4: column 'y' is not a number: 'abc'" in line
    code, line = _error(capsys, ["fit", "--run-dir", "e5", "--data", tmp_path / "short.csv"])
    assert "short.csv line 3: 1 fields, the header has 2" in line
    code, line = _error(capsys, ["fit", "--run-dir", "e6", "--data", tmp_path / "absent.csv"])
    assert "absent.csv: no such file" in line
    code, line = _error(capsys, ["fit", "--run-dir", "e7", "--data", tmp_path / "bad.csv", "--x", "x,w"])
    assert "missing column 'w'" in line
    assert run(main, ["fit", "--run-dir", "r", "--demo"], capsys)[0] == 0
    code, line = _error(capsys, ["predict", "--run-dir", "r", "--x", "1,a"])
    assert code == 2 and "expected numbers" in line
    code, line = _error(capsys, ["predict", "--run-dir", "r"])
    assert code == 2 and "exactly one of --x" in line
    code, line = _error(capsys, ["predict", "--run-dir", "r", "--data", tmp_path / "noy.csv", "--x", "1"])
    code, line = _error(capsys, ["predict", "--run-dir", tmp_path])
    assert code == 2
