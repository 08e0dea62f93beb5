"""recsys.mf: learns the demo ratings, 2 replicas = 1, evaluate/predict, bad input, real ML-100K quality."""
import numpy as np
import pytest

from recsys import data as rd
from recsys import mf
from recsys.metrics import rmse
from tests.cli_helpers import one_replica_vs_two, run


def test_mf_learns_and_two_replicas_match_one(capsys):
    single, mirrored = one_replica_vs_two(mf.main, ["--demo", "--epochs", 1], capsys)
    # Adam normalises each coordinate by its gradient scale, which amplifies float rounding of the
    # summed replica gradients a little; a wrongly scaled penalty moves the RMSE by ~2e-2.
    assert mirrored["rmse"] == pytest.approx(single["rmse"], abs=1e-2)  # Adam amplifies rounding; see test_base
    assert mirrored["loss"] == pytest.approx(single["loss"], rel=1e-2)
    train, test = rd.load_split(None, True, "random", 0.1, 0)
    baseline = rmse(np.full(len(test), train.ratings.mean()), test.ratings)
    assert single["rmse"] < baseline - 0.05  # the global mean scores ~0.95 on the demo split

    code, evaluated, _ = run(mf.main, ["evaluate", "--demo", "--run-dir", "single"], capsys)
    assert code == 0 and evaluated["rmse"] == pytest.approx(single["rmse"], abs=1e-5)
    code, top, _ = run(mf.main, ["predict", "--demo", "--run-dir", "single", "--user", 3, "--top", 5], capsys)
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
def test_mf_real_movielens_rmse(shared_data, capsys):
    code, result, err = run(mf.main, ["train", "--data-dir", shared_data / "ml-100k"], capsys)
    assert code == 0, err
    assert result["rmse"] <= 0.92
