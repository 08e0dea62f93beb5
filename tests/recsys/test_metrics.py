"""recsys.metrics (the batched ranking metrics) against brute-force references and scikit-learn."""
import math

import numpy as np
import pytest

from recsys import metrics
from recsys.data import UserItemIndex


def brute_force(scores, test_items, exclude, k):
    """One user at a time, one item at a time: the definitions written out."""
    hits, ndcgs, aucs = [], [], []
    for u in range(len(scores)):
        t = test_items[u]
        others = [i for i in range(scores.shape[1]) if i != t and not exclude[u, i]]
        rank = sum(1 for i in others if scores[u, i] >= scores[u, t])
        hits.append(1.0 if rank < k else 0.0)
        ndcgs.append(1.0 / math.log2(rank + 2) if rank < k else 0.0)
        below = sum(1.0 if scores[u, i] < scores[u, t] else 0.5 if scores[u, i] == scores[u, t] else 0.0
                    for i in others)
        aucs.append(below / len(others))
    return np.array(hits), np.array(ndcgs), np.array(aucs)


def test_ranking_metrics_match_brute_force_with_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 6, (40, 25)).astype(np.float32)  # many ties
    test_items = rng.integers(0, 25, 40)
    exclude = rng.random((40, 25)) < 0.3
    exclude[np.arange(5), test_items[:5]] = True  # the test item itself is always a candidate
    for k in (1, 5, 10):
        got = metrics.ranking_metrics(scores, test_items, exclude, k)
        hit, ndcg, auc = brute_force(scores, test_items, exclude, k)
        np.testing.assert_allclose(got["hit"], hit)
        np.testing.assert_allclose(got["ndcg"], ndcg)
        np.testing.assert_allclose(got["auc"], auc)


def test_ranking_metrics_hand_example():
    scores = np.array([[0.9, 0.1, 0.5, 0.7, 0.3]])
    exclude = np.array([[True, False, False, False, False]])  # item 0 was seen in training
    got = metrics.ranking_metrics(scores, np.array([2]), exclude, k=2)
    # candidates 1, 3, 4; item 3 (0.7) beats the test item (0.5): rank 1
    assert got["hit"][0] == 1.0 and got["ndcg"][0] == pytest.approx(1 / math.log2(3))
    assert got["auc"][0] == pytest.approx(2 / 3)
    constant = metrics.ranking_metrics(np.zeros((1, 5)), np.array([2]), exclude, k=2)
    assert constant["hit"][0] == 0.0 and constant["auc"][0] == 0.5


def test_evaluate_ranking_batches_agree_and_use_the_index():
    rng = np.random.default_rng(1)
    n_users, n_items = 23, 17
    table = rng.normal(size=(n_users, n_items))
    users, items = rng.integers(0, n_users, 60), rng.integers(0, n_items, 60)
    index = UserItemIndex(users, items, n_users, n_items)
    test_items = rng.integers(0, n_items, n_users)
    all_users = np.arange(n_users)
    small = metrics.evaluate_ranking(lambda u: table[u], all_users, test_items, index, k=3, batch_users=4)
    large = metrics.evaluate_ranking(lambda u: table[u], all_users, test_items, index, k=3, batch_users=100)
    assert small == pytest.approx(large)
    hit, ndcg, auc = brute_force(table, test_items, index.mask(all_users), 3)
    assert small["hr_at_3"] == pytest.approx(hit.mean()) and small["ndcg_at_3"] == pytest.approx(ndcg.mean())
    assert small["auc"] == pytest.approx(auc.mean()) and small["users"] == n_users


def test_ranking_auc_matches_sklearn_per_user():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    scores = np.round(rng.normal(size=(12, 30)), 1)  # ties
    test_items = rng.integers(0, 30, 12)
    exclude = rng.random((12, 30)) < 0.2
    got = metrics.ranking_metrics(scores, test_items, exclude)["auc"]
    for u in range(12):
        keep = ~exclude[u]
        keep[test_items[u]] = True
        labels = np.arange(30) == test_items[u]
        assert got[u] == pytest.approx(sk.roc_auc_score(labels[keep], scores[u, keep]))
