"""recsys.splits: random and sequence-aware test splits, validation hold-out, CTR row splits."""
import numpy as np
import pytest

from common.errors import DatasetError, UsageError
from recsys.ctr import CTRData
from recsys.movielens import generate_movielens, read_movielens
from recsys.splits import hold_out_validation, load_splits, split_random, split_rows, split_seq_aware
from tests.recsys._movielens import ROWS, write_udata


def test_split_random_disjoint_and_seeded(tmp_path):
    data = read_movielens(generate_movielens(tmp_path / "ml", 30, 40, (5, 10)))
    train, test = split_random(data, 0.2, seed=3)
    keys = lambda d: set(zip(d.users.tolist(), d.items.tolist()))
    assert len(test) == round(0.2 * len(data)) and len(train) + len(test) == len(data)
    assert not keys(train) & keys(test) and keys(train) | keys(test) == keys(data)
    assert keys(split_random(data, 0.2, seed=3)[1]) == keys(test) != keys(split_random(data, 0.2, seed=4)[1])


def test_split_seq_aware_takes_latest_with_file_order_ties(tmp_path):
    train, test = split_seq_aware(read_movielens(write_udata(tmp_path, ROWS)))
    # user 1: items 3 and 2 both at t=300, the later line (item 2) wins; user 2: item 4 (t=60); user 3: item 1.
    assert sorted(zip(test.users.tolist(), test.items.tolist())) == [(0, 1), (1, 3), (2, 0)]
    assert len(train) == 3


def test_validation_is_carved_from_training_seeded_and_disjoint(tmp_path):
    data = read_movielens(generate_movielens(tmp_path / "ml", 30, 40, (5, 10)))
    keys = lambda d: set(zip(d.users.tolist(), d.items.tolist()))
    splits = load_splits(tmp_path / "ml", mode="random", test_ratio=0.2, val_ratio=0.25, seed=3)
    train, test = split_random(data, 0.2, seed=3)
    assert keys(splits.test) == keys(test) and keys(splits.train) == keys(train)  # the test split is unchanged
    assert len(splits.val) == round(0.25 * len(train)) and len(splits.fit) + len(splits.val) == len(train)
    assert not keys(splits.fit) & keys(splits.val) and keys(splits.fit) | keys(splits.val) == keys(train)
    again = hold_out_validation(train, "random", 0.25, seed=3)[1]
    other = hold_out_validation(train, "random", 0.25, seed=4)[1]
    assert keys(again) == keys(splits.val) != keys(other)


def test_sequence_aware_validation_is_each_users_second_to_last(tmp_path):
    rows = ROWS + [(3, 3, 2, 5)]  # user 3: item 3 before item 1; users 2 and 3 keep one training interaction
    splits = load_splits(write_udata(tmp_path, rows), mode="seq-aware")
    pairs = lambda d: sorted(zip(d.users.tolist(), d.items.tolist()))
    assert pairs(splits.test) == [(0, 1), (1, 3), (2, 0)]
    # user 1's training items are 1 (t=100) and 3 (t=300): item 3 is held out for validation
    assert pairs(splits.val) == [(0, 2)] and pairs(splits.fit) == [(0, 0), (1, 1), (2, 2)]
    assert pairs(splits.train) == sorted(pairs(splits.fit) + pairs(splits.val))


def test_split_rows_holds_out_validation_rows():
    data = CTRData(np.arange(40, dtype=np.int32).reshape(20, 2), np.arange(20) % 2 * 1.0, [40])
    rest, held = split_rows(data, 0.25, seed=1)
    assert len(held) == 5 and len(rest) == 15
    assert sorted(rest.features[:, 0].tolist() + held.features[:, 0].tolist()) == list(range(0, 40, 2))
    np.testing.assert_array_equal(held.labels, held.features[:, 0] // 2 % 2)
    with pytest.raises(DatasetError, match="--val-ratio"):
        split_rows(data, 0.01)


def test_empty_split_is_one_line_error(tmp_path):
    data = read_movielens(write_udata(tmp_path, ROWS[:1]))
    with pytest.raises(DatasetError, match="left the training set empty"):
        split_seq_aware(data)
    with pytest.raises(DatasetError, match="left the test set empty"):
        split_random(data, 0.1)
    with pytest.raises(UsageError):
        split_random(data, 1.5)
