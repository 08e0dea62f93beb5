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


def test_python_api_predict_and_evaluate_at_any_k(tmp_path):
    """predict ranks by the model's scores given the user's last L training items, without the items they
    rated; evaluate(top_k=K) scores the run at any k."""
    from recsys.implicit import latest_windows
    from recsys.splits import load_splits
    from tests.recsys._movielens import check_hr_at_k, expected_top

    run_dir = str(tmp_path / "api")
    trained = caser.train(caser.Config(epochs=1), demo=True, run_dir=run_dir)
    model = caser.load(run_dir)
    train_set = load_splits(None, True, "seq-aware").train
    for dense in (3, 40):
        user = int(train_set.file_ids("user", [dense])[0])
        users = np.array([dense], np.int32)
        window = latest_windows(train_set, users, caser.Config().window, train_set.num_items)
        scores = np.asarray(model.score_all((users, window)))[0]
        assert caser.predict(run_dir, user=user)["items"] == expected_top(scores, train_set, dense, 10)
    hr = check_hr_at_k(caser.evaluate, run_dir, train_set.num_items)
    assert hr[2] == pytest.approx(trained["hr_at_10"], abs=1e-6)
