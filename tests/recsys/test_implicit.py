"""recsys.implicit: the user-item index, negative sampling and sequence windows against brute force."""
import numpy as np
import pytest

from common.errors import DatasetError
from recsys.implicit import UserItemIndex, latest_windows, sample_negatives, sequence_windows
from recsys.movielens import generate_movielens, read_movielens


def test_user_item_index_contains_and_mask_match_brute_force():
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 7, 40), rng.integers(0, 11, 40)
    index = UserItemIndex(users, items, 8, 11)
    pairs = set(zip(users.tolist(), items.tolist()))
    qu, qi = rng.integers(0, 8, 200), rng.integers(0, 11, 200)
    assert index.contains(qu, qi).tolist() == [(u, i) in pairs for u, i in zip(qu.tolist(), qi.tolist())]
    batch = np.array([7, 3, 0, 3])
    expected = np.array([[(u, i) in pairs for i in range(11)] for u in batch.tolist()])
    np.testing.assert_array_equal(index.mask(batch), expected)


def test_sample_negatives_avoids_positives_and_covers_the_rest():
    users = np.array([0, 0, 1, 1, 1])
    items = np.array([0, 1, 1, 2, 3])
    index = UserItemIndex(users, items, 2, 5)
    rng = np.random.default_rng(0)
    neg = sample_negatives(index, np.array([0] * 300 + [1] * 300), rng)
    assert set(neg[:300, 0].tolist()) == {2, 3, 4} and set(neg[300:, 0].tolist()) == {0, 4}
    full = UserItemIndex([0, 0], [0, 1], 1, 2)
    with pytest.raises(DatasetError, match="every item"):
        sample_negatives(full, np.array([0]), rng)


def test_sequence_windows_match_brute_force(tmp_path):
    data = read_movielens(generate_movielens(tmp_path / "ml", 12, 30, (1, 9), seed=1))
    L, pad = 3, data.num_items
    users, windows, targets = sequence_windows(data, L, pad)
    expected = []
    for u in range(data.num_users):
        idx = [j for j in range(len(data)) if data.users[j] == u]
        idx.sort(key=lambda j: (data.timestamps[j], j))
        seq = [int(data.items[j]) for j in idx]
        for t in range(1, len(seq)):
            prev = seq[max(0, t - L):t]
            expected.append((u, [pad] * (L - len(prev)) + prev, seq[t]))
    got = list(zip(users.tolist(), windows.tolist(), targets.tolist()))
    assert sorted(got) == sorted(expected)
    last = latest_windows(data, np.arange(data.num_users), L, pad)
    for u in range(data.num_users):
        idx = sorted((j for j in range(len(data)) if data.users[j] == u), key=lambda j: (data.timestamps[j], j))
        seq = [int(data.items[j]) for j in idx][-L:]
        assert last[u].tolist() == [pad] * (L - len(seq)) + seq
