"""recsys.autorec: masked loss by hand, learns the demo ratings, 2 replicas = 1, real ML-100K quality."""
import numpy as np
import pytest

from sklearn.metrics import root_mean_squared_error as rmse

from recsys import autorec
from recsys.splits import load_split
from tests.cli_helpers import one_replica_vs_two, run


def test_masked_loss_counts_only_observed_ratings():
    cfg = autorec.Config(hidden=3, dropout=0.0, weight_decay=0.0)
    model = autorec.build(cfg, num_users=4)
    ratings = np.array([[5, 0, 3, 0], [0, 0, 0, 1]], np.float32)
    recon = np.asarray(model(ratings))
    observed = ratings != 0
    expected = np.mean(np.sum(np.where(observed, (recon - ratings) ** 2, 0), axis=1))
    assert float(model.training_loss((ratings, ratings))) == pytest.approx(expected, rel=1e-5)
    decayed = autorec.build(autorec.Config(hidden=3, dropout=0.0, weight_decay=0.5), num_users=4)
    decayed.set_weights(model.get_weights())
    l2 = sum(float(np.sum(np.square(w))) for w in (model.encoder.kernel, model.decoder.kernel))
    assert float(decayed.training_loss((ratings, ratings))) == pytest.approx(expected + 0.5 * l2, rel=1e-5)


def test_autorec_learns_and_two_replicas_match_one(capsys):
    single, mirrored = one_replica_vs_two(autorec.main, ["--demo", "--epochs", 1, "--dropout", 0], capsys)
    assert mirrored["rmse"] == pytest.approx(single["rmse"], abs=1e-2)  # Adam amplifies rounding; see test_base
    code, trained, err = run(autorec.main, ["train", "--demo", "--epochs", 8, "--dropout", 0, "--run-dir", "longer"],
                             capsys)
    assert code == 0, err
    train, test = load_split(None, True, "random", 0.1, 0)
    item_means = np.bincount(train.items, train.ratings, train.num_items) / np.maximum(
        np.bincount(train.items, minlength=train.num_items), 1)
    baseline = rmse(test.ratings, np.where(item_means[test.items] > 0, item_means[test.items],
                                           train.ratings.mean()))
    assert trained["rmse"] < baseline  # better than each item's mean rating
    assert trained["val_rmse"] < 1.2 and trained["run_dir"] == "longer"
    code, evaluated, _ = run(autorec.main, ["evaluate", "--run-dir", "longer"], capsys)
    assert code == 0 and evaluated["rmse"] == pytest.approx(trained["rmse"], abs=1e-5)


@pytest.mark.slow
def test_autorec_real_movielens_rmse(shared_data, capsys):
    code, result, err = run(autorec.main, ["train", "--data-dir", shared_data / "ml-100k"], capsys)
    assert code == 0, err
    assert result["rmse"] <= 0.90


def test_python_api_predict_recommends_the_highest_reconstructed_unrated_items(tmp_path):
    from recsys.autorec_model import item_columns
    from recsys.splits import load_splits
    from tests.recsys._movielens import expected_top

    run_dir = str(tmp_path / "api")
    autorec.train(autorec.Config(epochs=2), demo=True, run_dir=run_dir)
    model = autorec.load(run_dir)
    train_set = load_splits(None, True, "random").train
    recon = np.clip(model.predict(item_columns(train_set), batch_size=512, verbose=0), 1, 5)
    for dense in (0, 9):
        user = int(train_set.file_ids("user", [dense])[0])
        answer = autorec.predict(run_dir, user=user, top=20)
        assert answer["items"] == expected_top(recon[:, dense], train_set, dense, 20)
        assert answer["predicted_ratings"] == sorted(answer["predicted_ratings"], reverse=True)
