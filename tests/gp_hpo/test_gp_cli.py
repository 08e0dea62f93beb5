"""`python -m gp_hpo.gp fit|predict|plot`: the JSON, the run directory, and the one-line errors."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

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
    assert out["plots"] == ["r/fit.png", "r/samples.png"]
    # three sample curves in each panel: matplotlib's first three cycle colours, and not the fourth
    image = np.asarray(Image.open(tmp_path / "r" / "samples.png").convert("RGB")).astype(int)
    halves = image[:, : image.shape[1] // 2], image[:, image.shape[1] // 2:]
    colours = {"C0": (31, 119, 180), "C1": (255, 127, 14), "C2": (44, 160, 44), "C3": (214, 39, 40)}
    for half in halves:
        near = {name: int((np.abs(half - rgb).sum(-1) < 30).sum()) for name, rgb in colours.items()}
        assert min(near["C0"], near["C1"], near["C2"]) > 50 and near["C3"] == 0, near


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


def _series(path, x, y):
    return _csv(path, ["year", "level"], np.column_stack([x, y]).tolist())


def test_fit_with_an_expression_reports_units_and_restarts_and_predict_draws_the_forecast(capsys, tmp_path):
    rng = np.random.default_rng(5)
    x = np.sort(rng.uniform(1990, 2000, 90))
    level = 0.5 * (x - 1990) + np.sin(2 * np.pi * x) + 0.1 * rng.standard_normal(90)
    _series(tmp_path / "train.csv", x[x < 1998], level[x < 1998])
    _series(tmp_path / "test.csv", x[x >= 1998], level[x >= 1998])
    expression = "rbf(lengthscale=20) + periodic(period=1!) + white"
    argv = ["fit", "--run-dir", "r", "--data", tmp_path / "train.csv", "--x", "year", "--y", "level",
            "--kernel", expression, "--restarts", 2]
    capsys.readouterr()
    code = main([str(a) for a in argv])
    printed = capsys.readouterr().out
    assert code == 0
    out = json.loads(printed.strip().splitlines()[-1])
    assert out["periodic.period"] == 1.0 and out["noise_std"] == pytest.approx(1e-4 * level[x < 1998].std())
    assert f"  rbf.lengthscale       {out['rbf.lengthscale']:.6g} (year)" in printed
    assert f"  white.signal_std      {out['white.signal_std']:.6g} (level)" in printed
    run_dir = tmp_path / "r"
    saved = json.loads((run_dir / "model.json").read_text())
    assert saved["units"]["periodic.period"] == "year" and saved["units"]["periodic.lengthscale"] == "1"
    history = json.loads((run_dir / "fit.json").read_text())
    assert len(history["restarts"]) == 3 and history["restarts"][0]["start"]["rbf.lengthscale"] == pytest.approx(20)
    assert all(r["end"]["periodic.period"] == 1.0 for r in history["restarts"])
    best = history["restarts"][history["best"]]
    assert best["lml"] == pytest.approx(out["log_marginal_likelihood"], abs=1e-6)
    assert best["lml"] == max(r["lml"] for r in history["restarts"])
    config = json.loads((run_dir / "config.json").read_text())
    assert config["kernel"] == expression and config["data"] == str(tmp_path / "train.csv")
    assert not {"n", "data_noise", "optimizer", "iterations", "lr"} & set(config)
    code, pred, err = run(main, ["predict", "--run-dir", "r", "--data", tmp_path / "test.csv"], capsys)
    assert code == 0, err
    assert pred["rmse"] < 0.3 and pred["coverage_95"] >= 0.8  # 2 years ahead of a trend and a yearly wave
    rows = list(csv.DictReader(open(run_dir / "predictions.csv")))
    assert len(rows) == int((x >= 1998).sum()) and set(rows[0]) == {"year", "mean", "std", "f_std", "level"}
    import matplotlib.image

    image = matplotlib.image.imread(run_dir / "forecast.png")
    assert pred["forecast"] == str(Path("r") / "forecast.png") and image.shape[1] > 1.8 * image.shape[0] > 600
    # the 95% band (C0 at alpha 0.25 on white: about (0.78, 0.86, 0.93)) is drawn along the whole series:
    # 0.7% of the pixels here, against 0.1% for its legend patch alone
    band = np.all(np.abs(image[..., :3] - [0.78, 0.86, 0.93]) < 0.02, axis=-1)
    assert 0.003 < band.mean() < 0.5


def test_config_of_the_book_data_and_gpytorch_records_what_applies(capsys, tmp_path):
    assert run(main, ["fit", "--run-dir", "b", "--demo", "--backend", "gpytorch"], capsys)[0] == 0
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert config["n"] == 50 and config["data_noise"] == 0.25 and config["optimizer"] == "lbfgs"
    assert "x" not in config and "y" not in config


def test_a_bad_setting_is_one_line_naming_the_term(capsys, tmp_path):
    code, line = _error(capsys, ["fit", "--run-dir", "e", "--kernel", "rbf + periodic(perod=1)"])
    assert code == 2 and "in periodic(perod=1): unknown parameter 'perod'" in line
    code, line = _error(capsys, ["fit", "--run-dir", "e", "--kernel", "rbf(lengthscale=0)"])
    assert code == 2 and "in rbf(lengthscale=0): lengthscale must be a positive number, got '0'" in line
    assert not (tmp_path / "e").exists()


def test_the_python_api_fits_predicts_and_loads(tmp_path):
    from common.errors import UsageError
    from gp_hpo import gp, hpo

    fitted = gp.fit(gp.Config(kernel="rbf + periodic", restarts=0), run_dir="api")
    assert fitted["run_dir"] == "api" and fitted["n"] == 50
    predicted = gp.predict("api", x="0.5,1,2.5")
    model = gp.load("api")  # the fitted GP, conditioned on the run's data
    assert model.hyperparameters() == pytest.approx({k: fitted[k] for k in model.hyperparameters()})
    mean, f_std = model.predict(np.array([[0.5], [1.0], [2.5]]))
    np.testing.assert_allclose(mean, predicted["mean"], rtol=1e-9)
    np.testing.assert_allclose(f_std, predicted["f_std"], rtol=1e-9)
    newest = gp.fit(gp.Config(kernel="matern52", restarts=0))  # into runs/gp/<time>: what load() reads
    assert newest["run_dir"].startswith("runs/gp/")
    assert gp.load().hyperparameters() == pytest.approx({k: newest[k] for k in ("lengthscale", "signal_std",
                                                                                   "noise_std")})
    with pytest.raises(UsageError, match="unknown kernel"):
        gp.fit(gp.Config(kernel="rbf + nope"))
    with pytest.raises(UsageError, match="unknown option 'xs'"):
        gp.predict("api", xs="0.5")

    summary = hpo.run(hpo.Config(objective="gp_hpo.hpo.objectives:branin", searcher="bo", trials=6, initial_random=3,
                                 max_epochs=1, min_epochs=1), run_dir="study")
    assert summary["trials"] == 6 and summary["failed_trials"] == 0 and summary["study_dir"] == "study"
    assert json.loads((tmp_path / "study" / "summary.json").read_text())["best_error"] == summary["best_error"]
    with pytest.raises(UsageError, match="--min-epochs \\(3\\) must not exceed --max-epochs \\(1\\)"):
        hpo.run(hpo.Config(min_epochs=3, max_epochs=1), run_dir="other")
