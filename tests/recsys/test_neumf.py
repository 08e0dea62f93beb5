"""recsys.neumf: score_all equals per-pair scores, ranks the demo data, 2 replicas = 1, real quality."""
import contextlib
import io
import json

import keras
import numpy as np
import pytest

from common.data import shared_data_dir
from recsys import data as rdata
from recsys import neumf
from tests.cli_helpers import one_replica_vs_two, run


def test_score_all_matches_pairwise_scores():
    model = neumf.build(neumf.Config(factors=4, hidden=(6, 3)), num_users=5, num_items=7)
    for w in model.trainable_variables:  # move off the near-zero initialisation
        w.assign(np.random.default_rng(0).normal(size=w.shape).astype("float32"))
    users = np.array([0, 3, 4], np.int32)
    grid = np.asarray(model.score_all(users))
    pairs = np.asarray(model.score(np.repeat(users, 7), np.tile(np.arange(7, dtype=np.int32), 3)))
    np.testing.assert_allclose(grid, pairs.reshape(3, 7), rtol=1e-5, atol=1e-5)


def test_neumf_ranks_demo_data_and_two_replicas_match_one(capsys):
    single, mirrored = one_replica_vs_two(neumf.main, ["--demo", "--epochs", 3], capsys)
    for key in ("hr_at_10", "auc"):
        assert mirrored[key] == pytest.approx(single[key], abs=0.02)
    assert mirrored["loss"] == pytest.approx(single["loss"], rel=2e-2)
    # random scores give AUC 0.5 and HR@10 about 10/330 on the demo data
    assert single["auc"] > 0.7 and single["hr_at_10"] > 0.12
    assert single["val_auc"] > 0.7 and set(single) >= {"val_hr_at_10", "val_ndcg_at_10", "ndcg_at_10", "users"}
    code, evaluated, _ = run(neumf.main, ["evaluate", "--run-dir", "single"], capsys)
    assert code == 0 and evaluated["auc"] == pytest.approx(single["auc"], abs=1e-6)


def test_neumf_bad_flags_are_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        neumf.main(["train", "--demo", "--hidden", "8,x"])
    assert exit_info.value.code == 2
    assert "--hidden must be comma-separated positive integers" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        neumf.main(["train", "--demo", "--loss", "nope"])
    assert exit_info.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def real_neumf(tmp_path_factory):
    """Train NeuMF once with its defaults on real ML-100K (sequence-aware split); its metrics."""
    data = shared_data_dir()
    if data is None:
        pytest.skip("../shared/data is not present on this machine")
    out = io.StringIO()
    run_dir = tmp_path_factory.mktemp("neumf") / "run"
    with contextlib.redirect_stdout(out):
        code = neumf.main(["train", "--data-dir", str(data / "ml-100k"), "--run-dir", str(run_dir)])
    assert code == 0
    metrics = json.loads(out.getvalue().strip().splitlines()[-1])
    splits = rdata.load_splits(data / "ml-100k", False, "seq-aware")
    model = keras.models.load_model(run_dir / "model.keras")
    metrics.update(neumf.report(model, splits.train, splits.test, 50))
    return metrics


@pytest.mark.slow
def test_neumf_real_movielens_auc_and_beats_popularity(real_neumf):
    assert real_neumf["auc"] >= 0.86
    assert real_neumf["hr_at_10"] > 0.10  # popularity ranking scores 0.086 on this split


@pytest.mark.slow
def test_neumf_real_movielens_beats_the_books_printed_hit_rate(real_neumf):
    # The book prints "hit rate 0.33" for NeuMF; its evaluate_ranking calls
    # hit_and_auc(..., 50), so that number is HR@50 (over item ids < 943).
    assert real_neumf["hr_at_50"] >= 0.33


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="issue 4 open: HR@10 reaches 0.11, not 0.30, when the test item is "
                                       "ranked against every item the user has not interacted with")
def test_neumf_real_movielens_hit_rate_target(real_neumf):
    assert real_neumf["hr_at_10"] >= 0.30
