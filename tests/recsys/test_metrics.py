"""recsys.metrics (the batched ranking metrics) against brute-force references and scikit-learn."""
import math

import numpy as np
import pytest

from common.errors import DatasetError
from recsys import metrics
from recsys.implicit import UserItemIndex


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


def test_ndcg_hand_values():
    # one relevant item: NDCG@k = 1 / log2(rank + 2) for 0-based rank r < k, else 0
    scores = np.array([[0.9, 0.8, 0.7, 0.6, 0.5],    # test item 0 is first: rank 0 -> 1
                       [0.9, 0.8, 0.7, 0.6, 0.5],    # test item 2: rank 2 -> 1 / log2(4) = 0.5
                       [0.9, 0.8, 0.7, 0.6, 0.5],    # test item 4: rank 4 >= k = 3 -> 0
                       [0.1, 0.8, 0.7, 0.6, 0.5]])   # test item 3; item 1 (0.8) excluded: rank 1 -> 1 / log2(3)
    exclude = np.zeros((4, 5), bool)
    exclude[3, 1] = True
    got = metrics.ranking_metrics(scores, np.array([0, 2, 4, 3]), exclude, k=3)
    np.testing.assert_allclose(got["ndcg"], [1.0, 0.5, 0.0, 0.6309297535714575])
    np.testing.assert_allclose(got["hit"], [1, 1, 0, 1])
    index = UserItemIndex([3], [1], 4, 5)
    table = scores
    result = metrics.evaluate_ranking(lambda u: table[u], np.arange(4), np.array([0, 2, 4, 3]), index, k=3)
    assert result["ndcg_at_3"] == pytest.approx((1.0 + 0.5 + 0.0 + 0.6309297535714575) / 4)


def test_sample_candidates_are_distinct_unobserved_and_seeded():
    rng = np.random.default_rng(0)
    exclude = rng.random((50, 30)) < 0.3
    tests = rng.integers(0, 30, 50)
    a = metrics.sample_candidates(exclude, tests, 10, metrics.sampled_rng(7))
    b = metrics.sample_candidates(exclude, tests, 10, metrics.sampled_rng(7))
    c = metrics.sample_candidates(exclude, tests, 10, metrics.sampled_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    for u in range(50):
        assert len(set(a[u].tolist())) == 10 and tests[u] not in a[u] and not exclude[u, a[u]].any()
    # uniform over the allowed items: each of 20 allowed items drawn with probability 5/20
    one = np.zeros((4000, 21), bool)
    draws = metrics.sample_candidates(one, np.zeros(4000, int), 5, np.random.default_rng(1))
    counts = np.bincount(draws.ravel(), minlength=21)
    assert counts[0] == 0 and np.all(np.abs(counts[1:] / 4000 - 0.25) < 0.03)
    with pytest.raises(DatasetError, match="lower --negatives"):
        metrics.sample_candidates(np.ones((1, 5), bool), np.array([0]), 1, np.random.default_rng(0))


def test_sampled_protocol_hand_example():
    # 6 items; user 0 saw item 0, its test item is 1: the 4 unobserved others are all drawn.
    scores = np.array([[9.0, 0.5, 0.7, 0.2, 0.1, 0.6]])
    index = UserItemIndex([0], [0], 1, 6)
    got = metrics.evaluate_ranking(lambda u: scores[u], np.array([0]), np.array([1]), index, k=2, negatives=4)
    # candidates 2 (0.7), 5 (0.6) beat the test item (0.5), 3 and 4 do not: rank 2 -> no hit at k=2
    assert got["hr_at_2"] == 0.0 and got["ndcg_at_2"] == 0.0 and got["auc"] == pytest.approx(2 / 4)
    got = metrics.evaluate_ranking(lambda u: scores[u], np.array([0]), np.array([1]), index, k=3, negatives=4)
    assert got["hr_at_3"] == 1.0 and got["ndcg_at_3"] == pytest.approx(0.5)  # 1 / log2(2 + 2)
    # item 0 (9.0, seen in training) is never a candidate, so it cannot push the test item down
