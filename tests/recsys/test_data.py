"""recsys.data: MovieLens/CTR/Criteo readers, splits, negative sampling, sequence windows."""
import re

import numpy as np
import pytest

from common.errors import DatasetError, UsageError
from recsys import data as rd


def write_udata(tmp_path, rows, info=None):
    (tmp_path / "u.data").write_text("".join("\t".join(map(str, r)) + "\n" for r in rows))
    if info:
        (tmp_path / "u.info").write_text(f"{info[0]} users\n{info[1]} items\n{len(rows)} ratings\n")
    return tmp_path


ROWS = [(1, 1, 5, 100), (1, 3, 3, 300), (2, 2, 4, 50), (1, 2, 1, 300), (3, 1, 2, 10), (2, 4, 5, 60)]


def test_read_movielens_zero_based_and_stats(tmp_path):
    data = rd.read_movielens(write_udata(tmp_path, ROWS))
    assert data.users.tolist() == [0, 0, 1, 0, 2, 1]
    assert data.items.tolist() == [0, 2, 1, 1, 0, 3]
    assert data.ratings.tolist() == [5, 3, 4, 1, 2, 5]
    assert data.stats() == {"users": 3, "items": 4, "interactions": 6, "sparsity": 1 - 6 / 12}
    matrix = data.rating_matrix()
    assert matrix.shape == (3, 4) and matrix[0, 2] == 3 and matrix[2, 3] == 0


@pytest.mark.parametrize("line, message", [
    ("1\t2\t3", "line 3: expected 4 tab-separated fields"),
    ("1\tx\t3\t5", "line 3: item 'x' is not a number"),
    ("0\t2\t3\t5", "line 3: user id 0 is outside 1..3"),
    ("1\t9\t3\t5", "line 3: item id 9 is outside 1..4"),
    ("1\t2\t7\t5", "line 3: rating 7 is outside the 1-5 scale"),
])
def test_read_movielens_bad_lines(tmp_path, line, message):
    (tmp_path / "u.data").write_text("1\t1\t5\t1\n2\t2\t4\t2\n" + line + "\n")
    (tmp_path / "u.info").write_text("3 users\n4 items\n3 ratings\n")
    with pytest.raises(DatasetError, match=message):
        rd.read_movielens(tmp_path)


def test_real_movielens_statistics(shared_data):
    data = rd.read_movielens(shared_data / "ml-100k")
    assert data.stats() == {"users": 943, "items": 1682, "interactions": 100000,
                            "sparsity": pytest.approx(1 - 100000 / (943 * 1682))}
    assert data.users.min() == 0 and data.items.max() == 1681
    train, test = rd.split_random(data, 0.1, seed=0)
    assert (len(train), len(test)) == (90000, 10000)
    train, test = rd.split_seq_aware(data)
    assert len(test) == 943 and sorted(test.users.tolist()) == list(range(943))


def test_split_random_disjoint_and_seeded(tmp_path):
    data = rd.read_movielens(rd.generate_movielens(tmp_path / "ml", 30, 40, (5, 10)))
    train, test = rd.split_random(data, 0.2, seed=3)
    keys = lambda d: set(zip(d.users.tolist(), d.items.tolist()))
    assert len(test) == round(0.2 * len(data)) and len(train) + len(test) == len(data)
    assert not keys(train) & keys(test) and keys(train) | keys(test) == keys(data)
    assert keys(rd.split_random(data, 0.2, seed=3)[1]) == keys(test) != keys(rd.split_random(data, 0.2, seed=4)[1])


def test_split_seq_aware_takes_latest_with_file_order_ties(tmp_path):
    train, test = rd.split_seq_aware(rd.read_movielens(write_udata(tmp_path, ROWS)))
    # user 1: items 3 and 2 both at t=300, the later line (item 2) wins; user 2: item 4 (t=60); user 3: item 1.
    assert sorted(zip(test.users.tolist(), test.items.tolist())) == [(0, 1), (1, 3), (2, 0)]
    assert len(train) == 3


def test_validation_is_carved_from_training_seeded_and_disjoint(tmp_path):
    data = rd.read_movielens(rd.generate_movielens(tmp_path / "ml", 30, 40, (5, 10)))
    keys = lambda d: set(zip(d.users.tolist(), d.items.tolist()))
    splits = rd.load_splits(tmp_path / "ml", mode="random", test_ratio=0.2, val_ratio=0.25, seed=3)
    train, test = rd.split_random(data, 0.2, seed=3)
    assert keys(splits.test) == keys(test) and keys(splits.train) == keys(train)  # the test split is unchanged
    assert len(splits.val) == round(0.25 * len(train)) and len(splits.fit) + len(splits.val) == len(train)
    assert not keys(splits.fit) & keys(splits.val) and keys(splits.fit) | keys(splits.val) == keys(train)
    again = rd.hold_out_validation(train, "random", 0.25, seed=3)[1]
    other = rd.hold_out_validation(train, "random", 0.25, seed=4)[1]
    assert keys(again) == keys(splits.val) != keys(other)


def test_sequence_aware_validation_is_each_users_second_to_last(tmp_path):
    rows = ROWS + [(3, 3, 2, 5)]  # user 3: item 3 before item 1; users 2 and 3 keep one training interaction
    splits = rd.load_splits(write_udata(tmp_path, rows), mode="seq-aware")
    pairs = lambda d: sorted(zip(d.users.tolist(), d.items.tolist()))
    assert pairs(splits.test) == [(0, 1), (1, 3), (2, 0)]
    # user 1's training items are 1 (t=100) and 3 (t=300): item 3 is held out for validation
    assert pairs(splits.val) == [(0, 2)] and pairs(splits.fit) == [(0, 0), (1, 1), (2, 2)]
    assert pairs(splits.train) == sorted(pairs(splits.fit) + pairs(splits.val))


def test_split_rows_holds_out_validation_rows():
    data = rd.CTRData(np.arange(40, dtype=np.int32).reshape(20, 2), np.arange(20) % 2 * 1.0, [40])
    rest, held = rd.split_rows(data, 0.25, seed=1)
    assert len(held) == 5 and len(rest) == 15
    assert sorted(rest.features[:, 0].tolist() + held.features[:, 0].tolist()) == list(range(0, 40, 2))
    np.testing.assert_array_equal(held.labels, held.features[:, 0] // 2 % 2)
    with pytest.raises(DatasetError, match="--val-ratio"):
        rd.split_rows(data, 0.01)


def test_empty_split_is_one_line_error(tmp_path):
    data = rd.read_movielens(write_udata(tmp_path, ROWS[:1]))
    with pytest.raises(DatasetError, match="left the training set empty"):
        rd.split_seq_aware(data)
    with pytest.raises(DatasetError, match="left the test set empty"):
        rd.split_random(data, 0.1)
    with pytest.raises(UsageError):
        rd.split_random(data, 1.5)


def test_user_item_index_contains_and_mask_match_brute_force():
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 7, 40), rng.integers(0, 11, 40)
    index = rd.UserItemIndex(users, items, 8, 11)
    pairs = set(zip(users.tolist(), items.tolist()))
    qu, qi = rng.integers(0, 8, 200), rng.integers(0, 11, 200)
    assert index.contains(qu, qi).tolist() == [(u, i) in pairs for u, i in zip(qu.tolist(), qi.tolist())]
    batch = np.array([7, 3, 0, 3])
    expected = np.array([[(u, i) in pairs for i in range(11)] for u in batch.tolist()])
    np.testing.assert_array_equal(index.mask(batch), expected)


def test_sample_negatives_avoids_positives_and_covers_the_rest():
    users = np.array([0, 0, 1, 1, 1])
    items = np.array([0, 1, 1, 2, 3])
    index = rd.UserItemIndex(users, items, 2, 5)
    rng = np.random.default_rng(0)
    neg = rd.sample_negatives(index, np.array([0] * 300 + [1] * 300), rng)
    assert set(neg[:300, 0].tolist()) == {2, 3, 4} and set(neg[300:, 0].tolist()) == {0, 4}
    full = rd.UserItemIndex([0, 0], [0, 1], 1, 2)
    with pytest.raises(DatasetError, match="every item"):
        rd.sample_negatives(full, np.array([0]), rng)


def test_sequence_windows_match_brute_force(tmp_path):
    data = rd.read_movielens(rd.generate_movielens(tmp_path / "ml", 12, 30, (1, 9), seed=1))
    L, pad = 3, data.num_items
    users, windows, targets = rd.sequence_windows(data, L, pad)
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
    last = rd.latest_windows(data, np.arange(data.num_users), L, pad)
    for u in range(data.num_users):
        idx = sorted((j for j in range(len(data)) if data.users[j] == u), key=lambda j: (data.timestamps[j], j))
        seq = [int(data.items[j]) for j in idx][-L:]
        assert last[u].tolist() == [pad] * (L - len(seq)) + seq


def test_generate_movielens_is_seeded_and_readable(tmp_path):
    a = rd.read_movielens(rd.generate_movielens(tmp_path / "a"))
    b = rd.read_movielens(rd.generate_movielens(tmp_path / "b"))
    np.testing.assert_array_equal(a.ratings, b.ratings)
    assert set(np.unique(a.ratings).tolist()) <= {1, 2, 3, 4, 5}
    counts = np.bincount(a.items, minlength=a.num_items)
    assert counts.max() > 8 * max(np.median(counts), 1)  # popularity skew


def test_ctr_reader_vocabulary_and_errors(tmp_path):
    rows = ["1\ta\tx", "0\ta\ty", "0\ta\tx", "1\tb\tx", "0\ta\tz"]
    (tmp_path / "f.csv").write_text("\n".join(rows) + "\n")
    labels, raw = rd.read_ctr_file(tmp_path / "f.csv", fields=2)
    assert labels.tolist() == [1, 0, 0, 1, 0]
    vocab = rd.FieldVocabulary(raw, threshold=2)
    assert vocab.field_dims == [2, 2]  # field 0: {a} + rare bucket; field 1: {x} + rare bucket
    assert vocab.encode(raw).tolist() == [[0, 2], [0, 3], [0, 2], [1, 2], [0, 3]]
    assert vocab.encode(np.array([["q", "x"]])).tolist() == [[1, 2]]  # unseen -> bucket
    (tmp_path / "g.csv").write_text("1\ta\tx\n0\ta\n")
    with pytest.raises(DatasetError, match="line 2: expected 3 fields"):
        rd.read_ctr_file(tmp_path / "g.csv", fields=2)
    (tmp_path / "h.csv").write_text("1\ta\tx\n2\ta\tx\n")
    with pytest.raises(DatasetError, match="line 2: label '2' is not 0 or 1"):
        rd.read_ctr_file(tmp_path / "h.csv", fields=2)


def test_generated_ctr_round_trip(tmp_path):
    train, test = rd.load_ctr(rd.generate_ctr(tmp_path / "ctr", rows=(2000, 500)))
    assert train.features.shape == (2000, rd.CTR_FIELDS) and len(test) == 500
    assert train.features.max() < train.num_features
    offsets = np.concatenate([[0], np.cumsum(train.field_dims)[:-1]])
    assert np.all(train.features >= offsets) and np.all(train.features < offsets + train.field_dims)
    assert 0.1 < train.labels.mean() < 0.6


def test_missing_movielens_offline_is_one_line(tmp_path):
    with pytest.raises(DatasetError, match="u.data not found"):
        rd.movielens_dir(tmp_path)


@pytest.mark.parametrize("dataset", sorted(rd.RELEASES))
def test_every_release_round_trips_with_dense_ids(tmp_path, dataset):
    directory = rd.generate_movielens(tmp_path / dataset, 30, 50, (5, 12), seed=2, dataset=dataset)
    release = rd.RELEASES[dataset]
    lines = (directory / release.filename).read_text().splitlines()
    if release.header:
        assert lines.pop(0) == "userId,movieId,rating,timestamp"
    rows = [line.split(release.sep) for line in lines]
    assert {len(r) for r in rows} == {4}
    data = rd.read_movielens(directory, dataset)
    assert len(data) == len(rows) and data.users.max() < data.num_users and data.items.max() < data.num_items
    # the dense ids map back to the file's ids, line by line
    assert data.file_ids("user", data.users).tolist() == [int(r[0]) for r in rows]
    assert data.file_ids("item", data.items).tolist() == [int(r[1]) for r in rows]
    assert data.ratings.tolist() == [float(r[2]) for r in rows]
    assert data.rating_scale == release.scale
    if dataset != "ml-100k":  # the real releases skip item ids; so does the generator
        assert data.item_ids[-1] > data.num_items and np.all(np.diff(data.item_ids) > 0)
    if release.scale[0] == 0.5:
        assert set(np.unique(data.ratings * 2) % 2) == {0, 1}  # half stars


@pytest.mark.parametrize("dataset, line, message", [
    ("ml-1m", "1::2::3", "line 3: expected 4 '::'-separated fields (user, item, rating, timestamp), got 3"),
    ("ml-1m", "1::2::3::4::5", "line 3: expected 4 '::'-separated fields (user, item, rating, timestamp), got 5"),
    ("ml-1m", "1::x::3::5", "line 3: item 'x' is not a number"),
    ("ml-1m", "1::2::3::5.5", "line 3: timestamp '5.5' is not an integer"),
    ("ml-1m", "1::2::9::5", "line 3: rating 9 is outside the 1-5 scale"),
    ("ml-10m", "1::2::0.2::5", "line 3: rating 0.2 is outside the 0.5-5 scale"),
    ("ml-25m", "1,2,3", "line 4: expected 4 comma-separated fields (user, item, rating, timestamp), got 3"),
    ("ml-25m", "1,2,3,4,5", "line 4: expected 4 comma-separated fields"),
    ("ml-20m", "u1,2,3,4", "line 4: user 'u1' is not a number"),
])
def test_release_readers_name_the_bad_line(tmp_path, dataset, line, message):
    release = rd.RELEASES[dataset]
    good = release.sep.join(["1", "1", "5", "1"]) + "\n" + release.sep.join(["2", "3", "4", "2"]) + "\n"
    header = "userId,movieId,rating,timestamp\n" if release.header else ""
    (tmp_path / release.filename).write_text(header + good + line + "\n" + good)
    with pytest.raises(DatasetError, match=re.escape(message)):
        rd.read_movielens(tmp_path, dataset)


def test_release_reader_reads_in_chunks_and_skips_blank_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(rd, "CHUNK_ROWS", 3)
    text = "".join(f"{u}::{10 * u}::{1 + u % 5}::{u}\n" for u in range(1, 9)) + "\n\n"
    (tmp_path / "ratings.dat").write_text(text.replace("4::40", "\n4::40"))  # a blank line in the middle
    data = rd.read_movielens(tmp_path, "ml-1m")
    assert data.file_ids("item", data.items).tolist() == [10 * u for u in range(1, 9)]
    (tmp_path / "ratings.dat").write_text(text.replace("7::70::3::7", "7::x::3::7"))
    with pytest.raises(DatasetError, match="line 7: item 'x'"):
        rd.read_movielens(tmp_path, "ml-1m")


@pytest.mark.parametrize("dataset, line, message", [
    ("ml-100k", "3\t2\t9\t5", "line 7: rating 9 is outside the 1-5 scale"),
    ("ml-100k", "3\t2000\t4\t5", "line 7: item id 2000 is outside 1..10 (declared in u.info)"),
    ("ml-1m", "3::2::9::5", "line 7: rating 9 is outside the 1-5 scale"),
    ("ml-25m", "3,2,0.2,5", "line 8: rating 0.2 is outside the 0.5-5 scale"),
])
def test_value_errors_name_the_file_line_after_blank_lines(tmp_path, monkeypatch, dataset, line, message):
    monkeypatch.setattr(rd, "CHUNK_ROWS", 2)  # the blank lines fall in other chunks than the bad line
    release = rd.RELEASES[dataset]
    header = "userId,movieId,rating,timestamp\n" if release.header else ""
    good = [release.sep.join([str(u), "1", "5", "1"]) for u in (1, 2)]
    (tmp_path / release.filename).write_text(header + f"{good[0]}\n\n{good[1]}\n\n\n\n{line}\n{good[0]}\n")
    (tmp_path / "u.info").write_text("5 users\n10 items\n")
    with pytest.raises(DatasetError, match=re.escape(message)):
        rd.read_movielens(tmp_path, dataset)


def test_large_generator_writes_the_release_layout(tmp_path):
    directory = rd.generate_movielens_large(tmp_path / "big", 20_000, 500, 300, dataset="ml-25m", chunk_users=128)
    data = rd.read_movielens(directory, "ml-25m")
    assert 15_000 < len(data) <= 20_500 and data.num_users == 500
    keys = data.users.astype(np.int64) * data.num_items + data.items
    assert len(np.unique(keys)) == len(keys)  # no user rates an item twice
    counts = np.bincount(data.items, minlength=data.num_items)
    assert counts.max() > 10 * np.median(counts)  # popularity skew


def test_truncated_release_archive_is_one_line(tmp_path):
    (tmp_path / "ml-1m.zip").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DatasetError, match="ml-1m.zip"):
        rd.movielens_dir(tmp_path, dataset="ml-1m")


def test_bumped_generator_version_writes_fresh_demo_sets_instead_of_reusing_the_old(monkeypatch, tmp_path):
    from recsys import criteo

    old = rd.movielens_dir(demo=True)
    assert old == tmp_path / "cache" / "recsys-demo" / "ml-100k-v1"
    ratings = (old / "u.data").read_text()
    (old / "u.data").write_text("1\t1\t5\t880000000\n")  # what an older generator left
    assert len(rd.load_movielens(demo=True).users) == 1  # same version: the cached set is reused
    old_ctr = rd.ctr_dir(demo=True)
    assert old_ctr.name == "ctr-v1" and criteo.demo_file().parent.name == "criteo-v1"
    monkeypatch.setattr(rd, "GENERATOR_VERSION", 2)
    monkeypatch.setattr(criteo, "GENERATOR_VERSION", 2)
    new = rd.movielens_dir(demo=True)
    assert new.name == "ml-100k-v2" and (new / "u.data").read_text() == ratings
    assert rd.ctr_dir(demo=True).name == "ctr-v2" and criteo.demo_file().parent.name == "criteo-v2"
    assert (rd.ctr_dir(demo=True) / "train.csv").read_text() == (old_ctr / "train.csv").read_text()
