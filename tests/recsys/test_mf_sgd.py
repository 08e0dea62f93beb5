"""recsys.mf --optimizer sgd (the default): one step is Surprise's per-rating SGD update computed in NumPy
(duplicate users and items add up), 2 replicas = 1, resumes exactly, real ML-100K quality."""
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from recsys import mf, mf_model
from tests.cli_helpers import one_replica_vs_two, resume_matches_uninterrupted, run


def test_one_sgd_step_is_the_per_rating_update_summed():
    lr, wd, mean = 0.05, 0.1, 3.5
    config = mf.Config(optimizer="sgd", lr=lr, factors=3, weight_decay=wd, init_scale=0.5)
    keras.utils.set_random_seed(0)
    model = mf.build(config, num_users=4, num_items=5, global_mean=mean)
    users_table, items_table = model.get_weights()  # fused: each bias is its table's last column
    assert users_table.shape == (4, 4) and items_table.shape == (5, 4) and not users_table[:, -1].any()
    users_table[:, -1] = [0.1, -0.2, 0.3, 0.0]
    items_table[:, -1] = [0.2, 0.0, -0.1, 0.4, 0.1]
    model.set_weights([users_table, items_table])
    p, q, bu, bi = users_table[:, :-1], items_table[:, :-1], users_table[:, -1:], items_table[:, -1:]
    users = np.array([0, 2, 0, 1], np.int32)  # user 0 twice, item 3 twice
    items = np.array([3, 3, 1, 4], np.int32)
    ratings = np.array([4.0, 2.0, 5.0, 1.0], np.float32)
    model.fit(tf.data.Dataset.from_tensors(((users, items), ratings)), epochs=1, verbose=0)

    # each rating's gradient of err^2 + wd (|p_u|^2 + |q_i|^2 + b_u^2 + b_i^2), all at the old values, then
    # lr x the sum for every row the batch touched (Surprise's update, err q - reg p, with lr and reg doubled)
    err = ratings - (np.sum(p[users] * q[items], 1) + bu[users, 0] + bi[items, 0] + mean)
    want = [w.copy() for w in (p, q, bu, bi)]
    for j, (u, i) in enumerate(zip(users, items)):
        want[0][u] += lr * 2 * (err[j] * q[i] - wd * p[u])
        want[1][i] += lr * 2 * (err[j] * p[u] - wd * q[i])
        want[2][u] += lr * 2 * (err[j] - wd * bu[u])
        want[3][i] += lr * 2 * (err[j] - wd * bi[i])
    got_users, got_items = model.get_weights()
    for got, expected in zip((got_users[:, :-1], got_items[:, :-1], got_users[:, -1:], got_items[:, -1:]), want,
                             strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got_users[3], users_table[3])  # user 3 was not in the batch: untouched


def test_mf_sgd_learns_and_two_replicas_match_one(capsys):
    single, mirrored = one_replica_vs_two(mf.main, ["--demo", "--epochs", 3], capsys)
    # plain SGD has no per-coordinate normalisation to amplify the replicas' float rounding (Adam: 1e-2)
    assert mirrored["rmse"] == pytest.approx(single["rmse"], abs=1e-4)
    assert mirrored["loss"] == pytest.approx(single["loss"], rel=1e-4)
    assert single["rmse"] < 0.80  # the global mean scores ~0.95 on the demo split
    model = keras.models.load_model(Path("single/model.keras"))
    assert model.per_rating is True and isinstance(model.optimizer, keras.optimizers.SGD)


def test_mf_sgd_resumes_exactly(capsys):
    resume_matches_uninterrupted(mf.main, ["--demo"], 2, capsys)


def test_mf_sgd_divergence_is_one_line(capsys):
    # Adam's learning rate given to the per-rating sgd: stopped after the first epoch, before its checkpoint
    code, _, err = run(mf.main, ["train", "--demo", "--lr", 0.2, "--epochs", 3, "--run-dir", "diverged"], capsys)
    assert code == 1 and "training diverged in epoch 1" in err and "--preset adam" in err
    assert len(err.strip().splitlines()) == 1 and not Path("diverged/checkpoints").exists()


def _ratings(counts, num_items=30, seed=0):
    from recsys.movielens import Interactions
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(len(counts)), counts).astype(np.int32)
    n = len(users)
    return Interactions(users, rng.integers(0, num_items, n).astype(np.int32), rng.integers(1, 6, n).astype(np.float32),
                        np.zeros(n, np.int64), len(counts), num_items)


def test_user_blocks_cut_consecutive_users_and_spread_heavy_ones(monkeypatch):
    config = mf.Config(factors=3, batch_size=64)  # rows of 4 float32: 16 bytes
    counts = np.full(100, 10)
    counts[5] = 500
    part = _ratings(counts)
    assert mf.user_blocks(part, config) is None  # a 1,600-byte table stays cached: the plain shuffle
    monkeypatch.setattr(mf_model, "BLOCKED_TABLE_BYTES", 1_000)
    monkeypatch.setattr(mf_model, "BLOCK_BYTES", 160)  # 10 users a block, 10 blocks
    members = mf.user_blocks(part, config)
    groups = np.empty(len(part), np.int64)  # each rating's block
    for block, ratings in enumerate(members):
        groups[ratings] = block
    assert sum(map(len, members)) == len(part)
    light = part.users != 5
    np.testing.assert_array_equal(groups[light], part.users[light] // 10)
    # user 5 holds 500 of its block's 590 ratings (54 of every 64-rating batch there), over the limit of
    # 8 x (1,490 / 10 blocks) / 64 = 18.6 ratings, so its ratings go to blocks drawn at random (about 50 each)
    assert len(np.unique(groups[~light])) == 10 and np.bincount(groups[~light]).max() < 80
    assert all(np.array_equal(a, b) for a, b in zip(mf.user_blocks(part, config), members, strict=True))  # seeded
    assert mf.user_blocks(part, mf.Config(factors=3, optimizer="lazy_adam")) is None


def test_blocked_sgd_learns_as_the_plain_shuffle_and_two_replicas_match_one(monkeypatch, capsys):
    argv = ["--demo", "--epochs", 3]
    code, plain, err = run(mf.main, ["train", *argv, "--run-dir", "plain"], capsys)
    assert code == 0, err
    monkeypatch.setattr(mf_model, "BLOCKED_TABLE_BYTES", 0)
    monkeypatch.setattr(mf_model, "BLOCK_BYTES", 68 * 50)  # the demo's 16 factors: 50 users a block
    single, mirrored = one_replica_vs_two(mf.main, argv, capsys)
    assert mirrored["rmse"] == pytest.approx(single["rmse"], abs=1e-4)
    assert single["rmse"] == pytest.approx(plain["rmse"], abs=0.01) and single["rmse"] != plain["rmse"]
