"""recsys.mf: learns the demo ratings, validates on held-out training ratings, 2 replicas = 1, evaluate/predict,
bad input, real ML-100K quality."""
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import root_mean_squared_error as rmse

from recsys import mf
from recsys.movielens import generate_movielens, read_movielens
from recsys.splits import load_split
from tests.cli_helpers import one_replica_vs_two, run


def test_mf_learns_and_two_replicas_match_one(capsys):
    # the textbook --optimizer adam (dense gradients); lazy_adam's and the default sgd's own tests are in
    # test_lazy_adam.py and test_mf_sgd.py
    single, mirrored = one_replica_vs_two(mf.main, ["--demo", "--epochs", 1, "--optimizer", "adam"], capsys)
    # Adam normalises each coordinate by its gradient scale, which amplifies float rounding of the
    # summed replica gradients a little; a wrongly scaled penalty moves the RMSE by ~2e-2.
    assert mirrored["rmse"] == pytest.approx(single["rmse"], abs=1e-2)  # Adam amplifies rounding; see test_base
    assert mirrored["loss"] == pytest.approx(single["loss"], rel=1e-2)
    train, test = load_split(None, True, "random", 0.1, 0)
    baseline = rmse(test.ratings, np.full(len(test), train.ratings.mean()))
    assert single["rmse"] < baseline - 0.05  # the global mean scores ~0.95 on the demo split
    # the curve is the validation RMSE, carved out of training; the test split is scored once
    history = json.loads(Path("single/metrics.json").read_text())
    assert [sorted(k for k in h if "rmse" in k) for h in history] == [["val_rmse"]]
    assert history[-1]["val_rmse"] == single["val_rmse"] and single["val_ratings"] == round(0.05 * len(train))
    assert single["interactions"] == len(train) and single["run_dir"] == "single"

    code, evaluated, _ = run(mf.main, ["evaluate", "--run-dir", "single"], capsys)  # data: what train read
    assert code == 0 and evaluated["rmse"] == pytest.approx(single["rmse"], abs=1e-5)
    code, top, _ = run(mf.main, ["predict", "--run-dir", "single", "--user", 3, "--top", 5], capsys)
    rated = set(train.items[train.users == 2].tolist())
    assert code == 0 and len(top["items"]) == 5 and not rated & {i - 1 for i in top["items"]}
    assert top["predicted_ratings"] == sorted(top["predicted_ratings"], reverse=True)


def test_mf_bad_input_is_one_line(tmp_path, capsys):
    (tmp_path / "u.data").write_text("1\t1\t5\t1\n1\t2\t9\t2\n")
    code, _, err = run(mf.main, ["train", "--data-dir", tmp_path], capsys)
    assert code == 1 and "line 2: rating 9 is outside the 1-5 scale" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(mf.main, ["train", "--demo", "--factors", 0], capsys)
    assert code == 2 and "--factors must be at least 1" in err
    code, _, err = run(mf.main, ["train", "--data-dir", tmp_path / "missing"], capsys)
    assert code == 1 and "does not exist" in err


@pytest.mark.slow
@pytest.mark.parametrize("argv, ceiling", [([], 0.90), (["--preset", "adam"], 0.905)], ids=["sgd", "adam"])
def test_mf_real_movielens_rmse(shared_data, capsys, argv, ceiling):
    # measured: 0.8917 (the sgd default, 40 epochs) and 0.8995 (lazy Adam, 20); Surprise's tuned SVD 0.892
    code, result, err = run(mf.main, ["train", "--data-dir", shared_data / "ml-100k", *argv], capsys)
    assert code == 0, err
    assert result["rmse"] <= ceiling


def test_mf_on_generated_ml_1m_speaks_the_files_ids(tmp_path, capsys):
    directory = generate_movielens(tmp_path / "ml-1m", 40, 60, (8, 15), seed=1, dataset="ml-1m")
    code, trained, err = run(mf.main, ["train", "--dataset", "ml-1m", "--data-dir", directory, "--epochs", 1,
                                       "--run-dir", "ml1m"], capsys)
    assert code == 0, err
    data = read_movielens(directory, "ml-1m")
    with np.load(Path("ml1m/ids.npz")) as saved:  # the dense -> file id maps travel with the run
        np.testing.assert_array_equal(saved["item_ids"], data.item_ids)
    user = int(data.user_ids[5])
    code, top, err = run(mf.main, ["predict", "--run-dir", "ml1m", "--user", user, "--top", 5], capsys)
    assert code == 0, err
    train, _ = load_split(directory, False, "random", 0.1, 0, dataset="ml-1m")  # what predict excludes
    rated = {int(i) for i in data.item_ids[train.items[train.users == 5]]}
    assert set(top["items"]) <= set(data.item_ids.tolist()) and not rated & set(top["items"])
    code, _, err = run(mf.main, ["predict", "--run-dir", "ml1m", "--user", 999], capsys)
    assert code == 2 and "--user 999 is not a user id" in err and len(err.strip().splitlines()) == 1
