"""The recsys bad-input matrix (issue 28): every reader of the domain on an empty file, a header-only file
(where the format has a header), blank lines and binary garbage gives one line naming the file (DatasetError;
exit 1 from the command), never a traceback. Small files written here; the commands stop before training."""
import importlib

import numpy as np
import pytest

from common.errors import DatasetError
from recsys import criteo
from recsys.ctr import load_ctr
from recsys.movielens import ID_MAPS, RELEASES, generate_movielens, load_id_maps, read_movielens
from tests.cli_helpers import one_line, run

GARBAGE = bytes(range(256)) * 4 + b"\x00\xff\xfe" * 64
RATINGS_HEADER = b"userId,movieId,rating,timestamp\n"
CRITEO_HEADER = ",".join(criteo.COLUMNS).encode() + b"\n"  # the DeepCTR sample's CSV form


# --- MovieLens ratings files: every release ---------------------------------------------------
def _ratings_cases():
    for dataset, release in RELEASES.items():
        yield dataset, "empty", b"", "holds no ratings"
        yield dataset, "blank lines", b"\n\n\n", "holds no ratings"
        yield dataset, "binary garbage", GARBAGE, "expected 4"
        if release.header:
            yield dataset, "header only", RATINGS_HEADER, "holds no ratings"
        else:  # a header where the release has none is a malformed first line
            yield dataset, "a header it does not have", RATINGS_HEADER, "line 1: expected 4"


@pytest.mark.parametrize("dataset, case, content, message",
                         [pytest.param(*c, id=f"{c[0]}-{c[1]}") for c in _ratings_cases()])
def test_movielens_ratings_file(tmp_path, dataset, case, content, message):
    path = tmp_path / RELEASES[dataset].filename
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=message) as e:
        read_movielens(tmp_path, dataset)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_empty_ratings_message_names_the_layout(tmp_path):
    (tmp_path / "u.data").write_bytes(b"")
    with pytest.raises(DatasetError) as e:
        read_movielens(tmp_path)
    assert str(e.value) == (f"{tmp_path / 'u.data'} holds no ratings; MovieLens' u.data has one rating per line: "
                            "4 tab-separated fields (user, item, rating, timestamp)")
    (tmp_path / "ratings.csv").write_bytes(RATINGS_HEADER)
    with pytest.raises(DatasetError, match="after the header line userId,movieId,rating,timestamp"):
        read_movielens(tmp_path, "ml-25m")


@pytest.mark.parametrize("content", [b"", GARBAGE, b"100000 ratings\n", b"943 users\n"],
                         ids=["empty", "binary garbage", "ratings only", "users only"])
def test_u_info_without_its_counts(tmp_path, content):
    (tmp_path / "u.data").write_text("1\t1\t5\t1\n2\t2\t4\t2\n")
    (tmp_path / "u.info").write_bytes(content)
    with pytest.raises(DatasetError, match="u.info declares no '<N> (users|items)' line") as e:
        read_movielens(tmp_path)
    assert str(tmp_path / "u.info") in str(e.value) and "delete it" in str(e.value)


@pytest.mark.parametrize("module", ["recsys.mf", "recsys.autorec", "recsys.neumf", "recsys.caser"])
def test_every_movielens_command_stops_on_a_zero_byte_u_data(tmp_path, capsys, module):
    (tmp_path / "ml").mkdir()
    (tmp_path / "ml" / "u.data").write_bytes(b"")
    main = importlib.import_module(module).main
    code, _, err = run(main, ["train", "--data-dir", tmp_path / "ml", "--epochs", 1, "--run-dir", tmp_path / "r"],
                       capsys)
    assert code == 1
    one_line(err, str(tmp_path / "ml" / "u.data"), "holds no ratings")


@pytest.mark.parametrize("dataset, content", [("ml-1m", GARBAGE), ("ml-25m", RATINGS_HEADER)],
                         ids=["ml-1m-binary garbage", "ml-25m-header only"])
def test_other_releases_from_the_command(tmp_path, capsys, dataset, content):
    path = tmp_path / RELEASES[dataset].filename
    path.write_bytes(content)
    from recsys import mf

    code, _, err = run(mf.main, ["train", "--dataset", dataset, "--data-dir", tmp_path, "--epochs", 1,
                                 "--run-dir", tmp_path / "r"], capsys)
    assert code == 1
    one_line(err, str(path))


def test_damaged_id_maps_of_a_run(tmp_path):
    data = read_movielens(generate_movielens(tmp_path / "ml", 20, 30, (3, 6)))
    for content in (b"", GARBAGE, b"PK\x03\x04 truncated"):
        (tmp_path / ID_MAPS).write_bytes(content)
        with pytest.raises(DatasetError, match="ids.npz is damaged .*train a new run") as e:
            load_id_maps(tmp_path, data)
        assert "\n" not in str(e.value)
    np.savez(tmp_path / ID_MAPS, users=np.arange(3))  # another archive: no user_ids
    with pytest.raises(DatasetError, match="ids.npz is damaged"):
        load_id_maps(tmp_path, data)


# --- the book's CTR files ---------------------------------------------------------------------
@pytest.mark.parametrize("case, content, message", [pytest.param(*c, id=c[0]) for c in [
    ("empty", b"", "holds no rows"),
    ("blank lines", b"\n\n", "holds no rows"),
    ("binary garbage", GARBAGE, "line 1: expected 35 fields"),
]])
def test_ctr_files(tmp_path, capsys, case, content, message):
    (tmp_path / "train.csv").write_bytes(content)
    (tmp_path / "test.csv").write_bytes(content)
    with pytest.raises(DatasetError, match=message):
        load_ctr(tmp_path)
    from recsys import fm

    code, _, err = run(fm.main, ["train", "--data-dir", tmp_path, "--epochs", 1, "--run-dir", tmp_path / "r"], capsys)
    assert code == 1
    one_line(err, str(tmp_path / "train.csv"), message)


# --- Criteo (TSV, or the DeepCTR sample's CSV with a header) ----------------------------------
@pytest.mark.parametrize("case, content, message", [pytest.param(*c, id=c[0]) for c in [
    ("empty", b"", "is empty; expected tab-separated lines"),
    ("blank lines", b"\n\n", "holds no rows"),
    ("CSV header only", CRITEO_HEADER, "holds no rows"),
    ("binary garbage", GARBAGE, "line 1: expected 40 fields"),
    ("a text line", b"hello world\n", "line 1: expected 40 fields"),
]])
@pytest.mark.parametrize("module", ["recsys.fm", "recsys.deepfm"])
def test_criteo_file(tmp_path, capsys, module, case, content, message):
    (tmp_path / "train.txt").write_bytes(content)
    with pytest.raises(DatasetError, match=message):
        criteo.prepare_criteo(tmp_path / "train.txt", cache_dir=tmp_path / "cache")
    main = importlib.import_module(module).main
    code, _, err = run(main, ["train", "--dataset", "criteo", "--data-dir", tmp_path, "--epochs", 1,
                              "--run-dir", tmp_path / "r"], capsys)
    assert code == 1
    one_line(err, str(tmp_path / "train.txt"), message)
    assert not list((tmp_path / "cache").glob("*/meta.json"))  # nothing a later run could take for a cache
