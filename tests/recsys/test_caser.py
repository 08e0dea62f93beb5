"""recsys.caser: score_all equals per-item scores, ranks the demo data, 2 replicas = 1, real run."""
import numpy as np
import pytest

from recsys import caser
from tests.cli_helpers import one_replica_vs_two, run


def test_score_all_matches_per_item_scores():
    model = caser.build(caser.Config(factors=4, window=3, horizontal=2, vertical=2), num_users=4, num_items=6)
    users = np.array([0, 2], np.int32)
    windows = np.array([[6, 1, 2], [3, 4, 5]], np.int32)  # 6 = padding
    grid = np.asarray(model.score_all((users, windows)))
    per_item = [np.asarray(model.score((users, windows), np.full(2, i, np.int32))) for i in range(6)]
    np.testing.assert_allclose(grid, np.stack(per_item, axis=1), rtol=1e-5, atol=1e-6)


def test_caser_ranks_demo_data_and_two_replicas_match_one(capsys):
    single, mirrored = one_replica_vs_two(caser.main, ["--demo", "--epochs", 1, "--dropout", 0], capsys)
    for key in ("hr_at_10", "auc"):
        assert mirrored[key] == pytest.approx(single[key], abs=0.02)
    assert single["auc"] > 0.65 and single["val_auc"] > 0.65
    code, evaluated, _ = run(caser.main, ["evaluate", "--run-dir", "single"], capsys)
    assert code == 0 and evaluated["hr_at_10"] == pytest.approx(single["hr_at_10"], abs=1e-6)


@pytest.mark.slow
def test_caser_real_movielens(shared_data, capsys):
    code, result, err = run(caser.main, ["train", "--data-dir", shared_data / "ml-100k"], capsys)
    assert code == 0, err
    assert result["auc"] > 0.8 and result["hr_at_10"] > 0.05
    # the NCF paper's protocol on the same run: measured HR@10 0.707, NDCG@10 0.436 (full: 0.175, 0.090)
    code, sampled, err = run(caser.main, ["evaluate", "--run-dir", result["run_dir"], "--protocol", "sampled"], capsys)
    assert code == 0, err
    assert sampled["hr_at_10"] >= 0.65 and sampled["ndcg_at_10"] >= 0.4
