"""recsys.neumf: score_all equals per-pair scores, ranks the demo data, 2 replicas = 1, real quality."""
import contextlib
import io
import json

import keras
import numpy as np
import pytest

from common.data import shared_data_dir
from recsys import neumf
from recsys.movielens import generate_movielens
from recsys.splits import load_splits
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
    assert evaluated["protocol"] == "full"
    # the NCF protocol: 100 sampled negatives per user, seeded; an easier ranking than all ~330 items
    code, sampled, _ = run(neumf.main, ["evaluate", "--run-dir", "single", "--protocol", "sampled"], capsys)
    assert code == 0 and sampled["protocol"] == "sampled" and sampled["hr_at_10"] > evaluated["hr_at_10"] + 0.05
    code, again, _ = run(neumf.main, ["evaluate", "--run-dir", "single", "--protocol", "sampled"], capsys)
    assert again == sampled
    code, fewer, _ = run(neumf.main, ["evaluate", "--run-dir", "single", "--protocol", "sampled",
                                      "--negatives", 20], capsys)
    assert code == 0 and fewer["hr_at_10"] > sampled["hr_at_10"]


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
    splits = load_splits(data / "ml-100k", False, "seq-aware")
    model = keras.models.load_model(run_dir / "model.keras")
    metrics.update(neumf.report(model, splits.train, splits.test, 50))
    sampled = neumf.report(model, splits.train, splits.test, 10, negatives=100, seed=0)
    metrics.update({f"sampled_{k}": v for k, v in sampled.items()})
    return metrics


@pytest.mark.slow
def test_neumf_real_movielens_full_protocol_target(real_neumf):
    # the target restated by issue 16: HR@10 >= 0.11 against every unobserved item (popularity
    # ranking scores 0.086 on this split) and AUC >= 0.86
    assert real_neumf["auc"] >= 0.86
    assert real_neumf["hr_at_10"] >= 0.11


@pytest.mark.slow
def test_neumf_real_movielens_beats_the_books_printed_hit_rate(real_neumf):
    # The book prints "hit rate 0.33" for NeuMF; its evaluate_ranking calls
    # hit_and_auc(..., 50), so that number is HR@50 (over item ids < 943).
    assert real_neumf["hr_at_50"] >= 0.33


def test_neumf_sampled_protocol_on_generated_ml_1m(tmp_path, capsys):
    directory = generate_movielens(tmp_path / "ml-1m", 60, 200, (10, 30), seed=1, dataset="ml-1m")
    code, result, err = run(neumf.main, ["train", "--dataset", "ml-1m", "--data-dir", directory, "--epochs", 1,
                                         "--protocol", "sampled", "--negatives", 100, "--factors", 8,
                                         "--hidden", "8", "--batch-size", 256], capsys)
    assert code == 0, err
    assert result["users"] == 60 and 0 <= result["ndcg_at_10"] <= result["hr_at_10"] <= 1
    code, _, err = run(neumf.main, ["evaluate", "--negatives", 190], capsys)
    assert code == 1 and "lower --negatives" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_neumf_real_movielens_sampled_protocol(real_neumf):
    # the NCF paper's protocol (100 sampled negatives); measured HR@10 0.638, NDCG@10 0.356 on ML-100K
    # (the paper's ML-1M figures: 0.730 and 0.447)
    assert real_neumf["sampled_hr_at_10"] >= 0.60 and real_neumf["sampled_ndcg_at_10"] >= 0.33


def test_python_api_predict_and_evaluate_at_any_k(tmp_path, capsys):
    """neumf.train/evaluate/predict/load: predict's items are the argsort of the model's scores without the
    user's training items; evaluate --top-k K scores the run at any k (HR@k grows with k, 1 at all items)."""
    from tests.cli_helpers import tree_digest
    from tests.recsys._movielens import check_hr_at_k, expected_top

    run_dir = str(tmp_path / "api")
    trained = neumf.train(neumf.Config(epochs=1), demo=True, run_dir=run_dir)
    assert trained["run_dir"] == run_dir and (tmp_path / "api" / "ids.npz").exists()
    before = tree_digest(tmp_path / "api")
    model = neumf.load(run_dir)
    train_set = load_splits(None, True, "seq-aware").train
    for dense in (0, 17):
        user = int(train_set.file_ids("user", [dense])[0])
        scores = np.asarray(model.score_all(np.array([dense], np.int32)))[0]
        answer = neumf.predict(run_dir, user=user, top=15)
        assert answer["user"] == user and answer["items"] == expected_top(scores, train_set, dense, 15)
    rated = int((train_set.users == 0).sum())
    everything = neumf.predict(run_dir, user=int(train_set.file_ids("user", [0])[0]), top=10_000)["items"]
    assert len(everything) == train_set.num_items - rated  # every unrated item, none rated
    hr = check_hr_at_k(neumf.evaluate, run_dir, train_set.num_items)
    assert hr[2] == pytest.approx(trained["hr_at_10"], abs=1e-6)
    code, at_50, err = run(neumf.main, ["evaluate", "--run-dir", run_dir, "--top-k", 50], capsys)
    assert code == 0 and at_50["hr_at_50"] == hr[3], err
    assert tree_digest(tmp_path / "api") == before  # evaluate at another k leaves the run's k as it was
    code, _, err = run(neumf.main, ["predict", "--run-dir", run_dir, "--user", 99999], capsys)
    assert code == 2 and "--user 99999 is not a user id" in err and len(err.strip().splitlines()) == 1
