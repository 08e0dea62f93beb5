"""recsys.movielens: the readers of every MovieLens release, their one-line errors, the generators and the demo
cache."""
import re

import numpy as np
import pytest

from common.errors import DatasetError
from recsys import ctr
from recsys import movielens as ml
from recsys.splits import split_random, split_seq_aware
from tests.recsys._movielens import ROWS, write_udata


def test_read_movielens_zero_based_and_stats(tmp_path):
    data = ml.read_movielens(write_udata(tmp_path, ROWS))
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
        ml.read_movielens(tmp_path)


def test_real_movielens_statistics(shared_data):
    data = ml.read_movielens(shared_data / "ml-100k")
    assert data.stats() == {"users": 943, "items": 1682, "interactions": 100000,
                            "sparsity": pytest.approx(1 - 100000 / (943 * 1682))}
    assert data.users.min() == 0 and data.items.max() == 1681
    train, test = split_random(data, 0.1, seed=0)
    assert (len(train), len(test)) == (90000, 10000)
    train, test = split_seq_aware(data)
    assert len(test) == 943 and sorted(test.users.tolist()) == list(range(943))


def test_generate_movielens_is_seeded_and_readable(tmp_path):
    a = ml.read_movielens(ml.generate_movielens(tmp_path / "a"))
    b = ml.read_movielens(ml.generate_movielens(tmp_path / "b"))
    np.testing.assert_array_equal(a.ratings, b.ratings)
    assert set(np.unique(a.ratings).tolist()) <= {1, 2, 3, 4, 5}
    counts = np.bincount(a.items, minlength=a.num_items)
    assert counts.max() > 8 * max(np.median(counts), 1)  # popularity skew


def test_missing_movielens_offline_is_one_line(tmp_path):
    with pytest.raises(DatasetError, match="u.data not found"):
        ml.movielens_dir(tmp_path)


@pytest.mark.parametrize("dataset", sorted(ml.RELEASES))
def test_every_release_round_trips_with_dense_ids(tmp_path, dataset):
    directory = ml.generate_movielens(tmp_path / dataset, 30, 50, (5, 12), seed=2, dataset=dataset)
    release = ml.RELEASES[dataset]
    lines = (directory / release.filename).read_text().splitlines()
    if release.header:
        assert lines.pop(0) == "userId,movieId,rating,timestamp"
    rows = [line.split(release.sep) for line in lines]
    assert {len(r) for r in rows} == {4}
    data = ml.read_movielens(directory, dataset)
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
    release = ml.RELEASES[dataset]
    good = release.sep.join(["1", "1", "5", "1"]) + "\n" + release.sep.join(["2", "3", "4", "2"]) + "\n"
    header = "userId,movieId,rating,timestamp\n" if release.header else ""
    (tmp_path / release.filename).write_text(header + good + line + "\n" + good)
    with pytest.raises(DatasetError, match=re.escape(message)):
        ml.read_movielens(tmp_path, dataset)


def test_release_reader_reads_in_chunks_and_skips_blank_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(ml, "CHUNK_ROWS", 3)
    text = "".join(f"{u}::{10 * u}::{1 + u % 5}::{u}\n" for u in range(1, 9)) + "\n\n"
    (tmp_path / "ratings.dat").write_text(text.replace("4::40", "\n4::40"))  # a blank line in the middle
    data = ml.read_movielens(tmp_path, "ml-1m")
    assert data.file_ids("item", data.items).tolist() == [10 * u for u in range(1, 9)]
    (tmp_path / "ratings.dat").write_text(text.replace("7::70::3::7", "7::x::3::7"))
    with pytest.raises(DatasetError, match="line 7: item 'x'"):
        ml.read_movielens(tmp_path, "ml-1m")


@pytest.mark.parametrize("dataset, line, message", [
    ("ml-100k", "3\t2\t9\t5", "line 7: rating 9 is outside the 1-5 scale"),
    ("ml-100k", "3\t2000\t4\t5", "line 7: item id 2000 is outside 1..10 (declared in u.info)"),
    ("ml-1m", "3::2::9::5", "line 7: rating 9 is outside the 1-5 scale"),
    ("ml-25m", "3,2,0.2,5", "line 8: rating 0.2 is outside the 0.5-5 scale"),
])
def test_value_errors_name_the_file_line_after_blank_lines(tmp_path, monkeypatch, dataset, line, message):
    monkeypatch.setattr(ml, "CHUNK_ROWS", 2)  # the blank lines fall in other chunks than the bad line
    release = ml.RELEASES[dataset]
    header = "userId,movieId,rating,timestamp\n" if release.header else ""
    good = [release.sep.join([str(u), "1", "5", "1"]) for u in (1, 2)]
    (tmp_path / release.filename).write_text(header + f"{good[0]}\n\n{good[1]}\n\n\n\n{line}\n{good[0]}\n")
    (tmp_path / "u.info").write_text("5 users\n10 items\n")
    with pytest.raises(DatasetError, match=re.escape(message)):
        ml.read_movielens(tmp_path, dataset)


def test_large_generator_writes_the_release_layout(tmp_path):
    directory = ml.generate_movielens_large(tmp_path / "big", 20_000, 500, 300, dataset="ml-25m", chunk_users=128)
    data = ml.read_movielens(directory, "ml-25m")
    assert 15_000 < len(data) <= 20_500 and data.num_users == 500
    keys = data.users.astype(np.int64) * data.num_items + data.items
    assert len(np.unique(keys)) == len(keys)  # no user rates an item twice
    counts = np.bincount(data.items, minlength=data.num_items)
    assert counts.max() > 10 * np.median(counts)  # popularity skew


def test_truncated_release_archive_is_one_line(tmp_path):
    (tmp_path / "ml-1m.zip").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DatasetError, match="ml-1m.zip"):
        ml.movielens_dir(tmp_path, dataset="ml-1m")


def test_bumped_generator_version_writes_fresh_demo_sets_instead_of_reusing_the_old(monkeypatch, tmp_path):
    from recsys import criteo

    old = ml.movielens_dir(demo=True)
    assert old == tmp_path / "cache" / "recsys-demo" / "ml-100k-v1"
    ratings = (old / "u.data").read_text()
    (old / "u.data").write_text("1\t1\t5\t880000000\n")  # what an older generator left
    assert len(ml.load_movielens(demo=True).users) == 1  # same version: the cached set is reused
    old_ctr = ctr.ctr_dir(demo=True)
    assert old_ctr.name == "ctr-v1" and criteo.demo_file().parent.name == "criteo-v1"
    monkeypatch.setattr(ml, "GENERATOR_VERSION", 2)
    monkeypatch.setattr(ctr, "GENERATOR_VERSION", 2)
    monkeypatch.setattr(criteo, "GENERATOR_VERSION", 2)
    new = ml.movielens_dir(demo=True)
    assert new.name == "ml-100k-v2" and (new / "u.data").read_text() == ratings
    assert ctr.ctr_dir(demo=True).name == "ctr-v2" and criteo.demo_file().parent.name == "criteo-v2"
    assert (ctr.ctr_dir(demo=True) / "train.csv").read_text() == (old_ctr / "train.csv").read_text()
