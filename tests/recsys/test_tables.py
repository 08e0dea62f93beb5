"""recsys.tables: interactions and click rows from CSV (header), TSV (none) and Parquet files the tests write, read to
exactly the expected arrays; the table path trains as u.data does; predict --user with string ids; each bad input
one line; TFDS's movielens ratings (mocked) read as the file."""
import json

import numpy as np
import pandas as pd
import pytest

from common.errors import DatasetError
from recsys import fm, mf, neumf
from recsys.movielens import generate_movielens, load_id_maps, read_movielens
from recsys.tables import find_table, read_click_table, read_interactions
from tests.cli_helpers import one_line, run

ROWS = [("alice", "m1", 5, 100), ("bob", "m2", 3, 50), ("alice", "m3", 4, 200), ("carol", "m1", 1, 10)]
NAMES = ["user", "item", "rating", "time"]


def _expect(data, user_ids, users, item_ids, items, ratings, timestamps):
    assert data.user_ids.tolist() == user_ids and data.users.tolist() == users
    assert data.item_ids.tolist() == item_ids and data.items.tolist() == items
    assert data.ratings.dtype == np.float32 and data.ratings.tolist() == ratings
    assert data.timestamps.dtype == np.int64 and data.timestamps.tolist() == timestamps
    assert (data.num_users, data.num_items) == (len(user_ids), len(item_ids))


def test_csv_with_header_string_ids(tmp_path):
    pd.DataFrame(ROWS, columns=NAMES).to_csv(tmp_path / "r.csv", index=False)
    data = read_interactions(*find_table(tmp_path), "user,item,rating,time")
    _expect(data, ["alice", "bob", "carol"], [0, 1, 0, 2], ["m1", "m2", "m3"], [0, 1, 2, 0], [5, 3, 4, 1],
            [100, 50, 200, 10])
    assert data.explicit and data.rating_scale == (1, 5)
    # columns in another order, by name; no rating column: implicit feedback, 1 each
    implicit = read_interactions(tmp_path / "r.csv", "csv", "item,user")
    assert implicit.user_ids.tolist() == ["m1", "m2", "m3"] and implicit.ratings.tolist() == [1, 1, 1, 1]
    assert not implicit.explicit and implicit.timestamps.tolist() == [0, 0, 0, 0]


def test_tsv_without_header_by_position(tmp_path):
    # numeric ids sort as numbers (2 before 10), "007" stays a string id; an empty rating slot: times, no ratings
    (tmp_path / "r.tsv").write_text("10\t7\t4.5\t2020-01-01T00:00:00Z\n2\t007\t2\t2020-01-01T00:01:00Z\n\n"
                                    "10\t8\t3\t1577923200\n")  # numbers and date-times may mix
    data = read_interactions(*find_table(tmp_path), "0,1,2,3")
    _expect(data, [2, 10], [1, 0, 1], ["007", "7", "8"], [1, 0, 2], [4.5, 2, 3],
            [1577836800, 1577836860, 1577923200])
    assert data.user_ids.dtype.kind == "i"
    times = read_interactions(tmp_path / "r.tsv", "tsv", "0,1,,3")
    assert not times.explicit and times.timestamps.tolist() == [1577836800, 1577836860, 1577923200]


def test_parquet(tmp_path):
    frame = pd.DataFrame({"when": [5, 6, 7], "uid": np.array([30, 4, 30], np.int64), "iid": ["x", "y", "y"],
                          "stars": [1.0, 2.0, 3.0]})
    frame.to_parquet(tmp_path / "r.parquet")
    data = read_interactions(*find_table(tmp_path), "uid,iid,stars,when")
    _expect(data, [4, 30], [1, 0, 1], ["x", "y"], [0, 1, 1], [1, 2, 3], [5, 6, 7])
    by_position = read_interactions(tmp_path / "r.parquet", "parquet", "1,2,3,0")
    assert by_position.users.tolist() == data.users.tolist() and by_position.ratings.tolist() == [1, 2, 3]


def _udata_and_csv(tmp_path):
    """The demo generator's u.data, and the same interactions as ratings.csv with a header (ids as in u.data)."""
    udata = generate_movielens(tmp_path / "udata", num_users=60, num_items=50, per_user=(10, 25))
    frame = pd.read_csv(udata / "u.data", sep="\t", header=None, names=["u", "i", "r", "t"])
    table = tmp_path / "table"
    table.mkdir()
    frame.to_csv(table / "ratings.csv", index=False)
    return udata, table, frame


def test_table_matches_udata(tmp_path, capsys):
    udata, table, frame = _udata_and_csv(tmp_path)
    movielens = read_movielens(udata)
    assert frame.i.nunique() == 50 and frame.u.nunique() == 60  # every id occurs: the dense ids agree
    data = read_interactions(table / "ratings.csv", "csv", "u,i,r,t")
    for name in ("users", "items", "ratings", "timestamps"):
        got, expected = getattr(data, name), getattr(movielens, name)
        assert got.dtype == expected.dtype and np.array_equal(got, expected), name
    assert np.array_equal(data.file_ids("item", np.arange(50)), movielens.file_ids("item", np.arange(50)))
    flags = ["--epochs", 1, "--factors", 4, "--batch-size", 64, "--lr", 0.02]
    code, from_udata, err = run(mf.main, ["train", "--data-dir", udata, *flags, "--run-dir", "a"], capsys)
    assert code == 0, err
    code, from_table, err = run(mf.main, ["train", "--data-dir", table, "--columns", "u,i,r,t", *flags,
                                          "--run-dir", "b"], capsys)
    assert code == 0, err
    assert from_table["rmse"] == from_udata["rmse"] and from_table["loss"] == from_udata["loss"]


def test_predict_with_string_ids_round_trip(tmp_path, capsys):
    _, table, frame = _udata_and_csv(tmp_path)
    names = np.array(["alice", "bob", "carol"] + [f"user{k}" for k in range(57)])
    frame.assign(u=names[frame.u - 1], i="film" + frame.i.astype(str)).to_csv(table / "ratings.csv", index=False)
    flags = ["--data-dir", table, "--columns", "u,i,r,t", "--epochs", 1, "--factors", 4, "--batch-size", 64]
    code, _, err = run(mf.main, ["train", *flags, "--run-dir", "run"], capsys)
    assert code == 0, err
    code, top, err = run(mf.main, ["predict", "--run-dir", "run", "--user", "alice", "--top", 4], capsys)
    assert code == 0, err
    assert top["user"] == "alice" and len(top["items"]) == 4 and all(i.startswith("film") for i in top["items"])
    # the recommended films are alice's unrated ones in training: at most her test ratings are among them
    seen = set(frame.i[frame.u == 1].map("film{}".format))
    assert len(seen & set(top["items"])) <= round(0.1 * len(frame))
    data = read_interactions(table / "ratings.csv", "csv", "u,i,r,t")
    users, items = load_id_maps("run", data)  # ids.npz holds the string ids, no pickles
    assert users.dtype.kind == "U" and users[0] == "alice" and set(top["items"]) <= set(items.tolist())
    code, _, err = run(mf.main, ["predict", "--run-dir", "run", "--user", "dave"], capsys)
    assert code == 2 and "dave is not a user id" in one_line(err, "alice..user9")


def test_implicit_table_ranks_and_rating_models_refuse(tmp_path, capsys):
    _, table, frame = _udata_and_csv(tmp_path)
    frame.assign(u="u" + frame.u.astype(str))[["u", "i", "t"]].to_csv(table / "ratings.csv", index=False)
    flags = ["--data-dir", table, "--columns", "u,i,,t", "--epochs", 1]
    code, result, err = run(neumf.main, ["train", *flags, "--factors", 4, "--hidden", 4, "--run-dir", "n"], capsys)
    assert code == 0 and result["users"] == 60 and 0 <= result["hr_at_10"] <= 1, err
    code, _, err = run(mf.main, ["train", *flags, "--run-dir", "m"], capsys)
    assert code == 2 and "has no rating column" in one_line(err, "recsys.neumf")


def _bad_interactions():
    yield "r.csv", b"user,item,rating\nalice,a,5\n", "user,item,stars", \
        "no column 'stars'; its columns: user, item, rating"
    yield "r.csv", b"user,item,rating\nalice,a,5\n\nbob,b,five\n", "user,item,rating", \
        "line 4: rating 'five' is not a number"
    yield "r.tsv", b"alice\ta\t5\nbob\tb\t?\n", "0,1,2", "r.tsv line 2: rating '?' is not a number"
    yield "r.csv", b"user,item,rating\n", "user,item,rating", "holds no interactions"
    yield "r.csv", b"", "user,item,rating", "is empty"
    yield "r.csv", b"user,item\nalice,\n", "user,item", "line 2: empty item"
    yield "r.csv", b"user,item,rating\na,b,5\nc,d\n", "user,item,rating", "line 3: empty rating"
    yield "r.csv", b"user,item,rating\na,b,5\nc,d,4,9\n", "user,item,rating", \
        "line 3: expected 3 comma-separated fields, got 4"


@pytest.mark.parametrize("name, content, columns, message", list(_bad_interactions()),
                         ids=["unknown column", "non-numeric rating", "tsv rating", "header only", "empty file",
                              "empty id", "short line", "extra field"])
def test_bad_interaction_tables(tmp_path, capsys, name, content, columns, message):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / name).write_bytes(content)
    code, _, err = run(neumf.main, ["train", "--data-dir", tmp_path / "data", "--columns", columns,
                                    "--run-dir", "run"], capsys)
    assert code == 1 and not (tmp_path / "run").exists()
    one_line(err, str(tmp_path / "data" / name), message)


def test_bad_folders(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "r.csv").write_text("user,item\na,b\n")
    code, _, err = run(mf.main, ["train", "--data-dir", data, "--run-dir", "run"], capsys)  # no --columns
    assert code == 2 and "holds no u.data but the csv table r.csv" in one_line(err, "--columns")
    pd.DataFrame({"user": ["a"], "item": ["b"]}).to_parquet(data / "r.parquet")
    code, _, err = run(mf.main, ["train", "--data-dir", data, "--columns", "user,item,x", "--run-dir", "run"], capsys)
    assert code == 1 and "several formats (csv, parquet" in one_line(err, str(data), "--data-file")
    code, _, err = run(mf.main, ["train", "--demo", "--columns", "user,item,x"], capsys)
    assert code == 2 and "--demo generates" in one_line(err)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty holds no table .* found: nothing"):
        find_table(tmp_path / "empty")


# --- click tables (fm, deepfm) ----------------------------------------------------------------
def test_click_table_tokens(tmp_path):
    (tmp_path / "c.csv").write_text("price,label,site\n10,1,a\n2,0,\n,1,b\n0.5,0,a\n")
    labels, raw = read_click_table(tmp_path / "c.csv", "csv", "label", "price", "site")
    assert labels.tolist() == [1, 0, 1, 0]
    # numbers bucketed as Criteo's integers: floor(ln(10)^2) = floor(5.30) = 5; 2 and 0.5 floor to 2 and 0
    assert raw.tolist() == [["5", "a"], ["2", ""], ["", "b"], ["0", "a"]]


def _click_table(path, rows=3000, seed=0):
    """A click table whose label follows `site` and `price` (seeded): a model that learns beats AUC 0.5."""
    rng = np.random.default_rng(seed)
    site = rng.integers(0, 6, rows)
    price = rng.exponential(20, rows)
    logit = np.array([-2, -1, 0, 1, 2, 3])[site] - 0.05 * price
    frame = pd.DataFrame({"label": (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int),
                          "price": price.round(1), "site": np.array(list("abcdef"))[site]})
    frame.to_csv(path, index=False)
    return frame


def test_fm_trains_on_a_click_table_and_predicts(tmp_path, capsys):
    (tmp_path / "d").mkdir()
    frame = _click_table(tmp_path / "d" / "clicks.csv")
    flags = ["--dataset", "table", "--data-dir", tmp_path / "d", "--numeric", "price", "--categorical", "site"]
    code, result, err = run(fm.main, ["train", *flags, "--epochs", 2, "--batch-size", 256, "--lr", 0.05,
                                      "--run-dir", "run"], capsys)
    assert code == 0, err
    assert result["auc"] > 0.75 and result["train_rows"] + result["val_rows"] + result["test_rows"] == len(frame)
    code, scored, err = run(fm.main, ["predict", "--run-dir", "run", "--row", "10.0,a", "--data",
                                      tmp_path / "d" / "clicks.csv"], capsys)
    assert code == 0 and scored["rows"] == 1 + len(frame), err
    first = frame.iloc[0]
    code, one, _ = run(fm.main, ["predict", "--run-dir", "run", "--row", f"{first.price},{first.site}"], capsys)
    assert one["probabilities"][0] == scored["probabilities"][1]  # a --row line and the table's row agree
    table_scores = np.array(scored["probabilities"][1:])
    assert table_scores[frame.site == "f"].mean() > table_scores[frame.site == "a"].mean() + 0.3


@pytest.mark.parametrize("content, flags, message", [
    (b"label,price,site\n1,3,a\n1,4,b\n", ["--numeric", "price"], "label column 'label' holds only 1"),
    (b"label,price,site\n1,3,a\n0,4,b\n", ["--numeric", "cost"], "no column 'cost'; its columns: label, price, site"),
    (b"label,price,site\n1,3,a\n0,cheap,b\n", ["--numeric", "price"], "line 3: numeric price 'cheap' is not a number"),
    (b"label,price,site\n1,3,a\n2,4,b\n", ["--categorical", "site"], "line 3: label '2' is not 0 or 1"),
], ids=["one class", "missing column", "non-numeric", "label not 0/1"])
def test_bad_click_tables(tmp_path, capsys, content, flags, message):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "c.csv").write_bytes(content)
    code, _, err = run(fm.main, ["train", "--dataset", "table", "--data-dir", tmp_path / "d", *flags,
                                 "--run-dir", "run"], capsys)
    assert code == 1 and not (tmp_path / "run").exists()
    one_line(err, str(tmp_path / "d" / "c.csv"), message)
    code, _, err = run(fm.main, ["train", "--data-dir", tmp_path / "d", *flags], capsys)  # without --dataset table
    assert code == 2 and "add --dataset table" in one_line(err)


# --- TFDS movielens/*-ratings ------------------------------------------------------------------
def test_tfds_ratings_match_the_file(tmp_path, capsys):
    """TFDS's examples (mocked offline: the same interactions as the u.data) give the u.data's arrays, the same
    1-epoch run, and a run that evaluates and predicts from what config.json recorded."""
    tfds = pytest.importorskip("tensorflow_datasets")
    import tensorflow as tf

    from recsys.tables import load_interactions

    udata, _, frame = _udata_and_csv(tmp_path)
    examples = {"user_id": frame.u.astype(str).str.encode("utf-8").to_numpy(),
                "movie_id": frame.i.astype(str).str.encode("utf-8").to_numpy(),
                "user_rating": frame.r.to_numpy(np.float32), "timestamp": frame.t.to_numpy(np.int64)}

    def as_dataset(self, *args, **kwargs):
        return tf.data.Dataset.from_tensor_slices(examples)

    flags = ["--epochs", 1, "--factors", 4, "--batch-size", 64, "--lr", 0.02]
    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        from common import tfds_source

        def read(split, batch_size):
            return tfds_source.load("movielens/100k-ratings", split, tmp_path, batch_size)

        data = load_interactions(tfds=("movielens/100k-ratings", read))
        movielens = read_movielens(udata)
        for name in ("users", "items", "ratings", "timestamps"):
            assert np.array_equal(getattr(data, name), getattr(movielens, name)), name
        assert data.user_ids.tolist() == list(range(1, 61)) and data.source == "TFDS movielens/100k-ratings"
        code, from_tfds, err = run(mf.main, ["train", "--tfds", "movielens/100k-ratings", "--tfds-dir", tmp_path,
                                             *flags, "--run-dir", "t"], capsys)
        assert code == 0, err
        code, evaluated, err = run(mf.main, ["evaluate", "--run-dir", "t"], capsys)  # TFDS again, from config.json
        assert code == 0 and evaluated["rmse"] == pytest.approx(from_tfds["rmse"], abs=1e-6), err
        code, top, err = run(mf.main, ["predict", "--run-dir", "t", "--user", 3, "--top", 2], capsys)
        assert code == 0 and top["user"] == 3 and len(top["items"]) == 2, err
        code, _, err = run(neumf.main, ["train", "--tfds", "movielens/100k-movies", "--tfds-dir", tmp_path], capsys)
        assert code == 2 and "-ratings config" in one_line(err)
    code, from_file, err = run(mf.main, ["train", "--data-dir", udata, *flags, "--run-dir", "f"], capsys)
    assert code == 0 and from_tfds["rmse"] == from_file["rmse"], err
    saved = json.loads((tmp_path / "t" / "config.json").read_text())["data"]
    assert saved["source"] == "tfds" and saved["tfds"] == "movielens/100k-ratings" and saved["read"] == ["train"]
