"""common.data against a real HTTP server on 127.0.0.1: cache, SHA-1, time-outs, unsafe archives."""
import hashlib
import http.server
import io
import socket
import tarfile
import threading
import time
import zipfile

import numpy as np
import pytest

from common import data
from common.errors import DatasetError


class _Server:
    """A static-file HTTP server in a thread that counts the requests it answers."""

    def __init__(self, root):
        self.requests = 0
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self):
                server.requests += 1
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    s = _Server(root)
    s.root = root
    yield s
    s.close()


def _zip_bytes(entries):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, content in entries.items():
            z.writestr(name, content)
    return buf.getvalue()


def test_correct_sha1_is_cached_and_reused(server, tmp_path):
    payload = b"hello dlsuite\n" * 1000
    (server.root / "file.bin").write_bytes(payload)
    sha1 = hashlib.sha1(payload).hexdigest()
    first = data.download(f"{server.url}/file.bin", sha1, tmp_path / "cache")
    assert first == tmp_path / "cache" / "file.bin" and first.read_bytes() == payload
    second = data.download(f"{server.url}/file.bin", sha1, tmp_path / "cache")
    assert second == first and server.requests == 1
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["file.bin"]


def test_wrong_sha1_fails_in_one_line_naming_both_hashes_and_caches_nothing(server, tmp_path):
    (server.root / "file.bin").write_bytes(b"tampered")
    actual = hashlib.sha1(b"tampered").hexdigest()
    with pytest.raises(DatasetError) as err:
        data.download(f"{server.url}/file.bin", "0" * 40, tmp_path / "cache")
    message = str(err.value)
    assert "\n" not in message and "0" * 40 in message and actual in message
    assert list((tmp_path / "cache").iterdir()) == []


def test_refused_connection_fails_fast_with_the_way_out(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tic = time.monotonic()
    with pytest.raises(DatasetError) as err:
        data.download(f"http://127.0.0.1:{port}/ml-100k.zip", "0" * 40, tmp_path / "cache")
    assert time.monotonic() - tic < 5
    message = str(err.value)
    assert "cannot download" in message and "--data-dir" in message and "ml-100k.zip" in message
    assert list((tmp_path / "cache").iterdir()) == []


def test_silent_server_times_out_within_seconds(tmp_path):
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/big.tar"
        tic = time.monotonic()
        with pytest.raises(DatasetError, match="timed out"):
            data.download(url, None, tmp_path / "cache", timeout=1.0)
        assert time.monotonic() - tic < 10


def test_zip_with_parent_entries_is_rejected_before_writing(tmp_path):
    archive = tmp_path / "evil.zip"
    archive.write_bytes(_zip_bytes({"ok.txt": "fine", "../escaped.txt": "bad"}))
    with pytest.raises(DatasetError, match="escapes the target directory"):
        data.extract(archive, tmp_path / "out" / "dest")
    assert not (tmp_path / "out" / "escaped.txt").exists()
    assert not (tmp_path / "out" / "dest").exists()


@pytest.mark.parametrize("name", ["../../escaped.txt", "/tmp/absolute-escape.txt"])
def test_tar_with_escaping_entries_is_rejected(tmp_path, name):
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as t:
        info = tarfile.TarInfo(name)
        info.size = 3
        t.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(DatasetError, match="escapes the target directory"):
        data.extract(archive, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()


def test_tar_symlink_pointing_out_is_rejected(tmp_path):
    archive = tmp_path / "link.tar"
    with tarfile.open(archive, "w") as t:
        info = tarfile.TarInfo("inner/link")
        info.type = tarfile.SYMTYPE
        info.linkname = "../../../etc"
        t.addfile(info)
    with pytest.raises(DatasetError, match="escapes"):
        data.extract(archive, tmp_path / "out")


def test_corrupt_archive_is_one_line(tmp_path):
    archive = tmp_path / "broken.zip"
    archive.write_bytes(_zip_bytes({"a.txt": "x" * 1000})[:-30])
    with pytest.raises(DatasetError) as err:
        data.extract(archive, tmp_path / "out")
    assert "\n" not in str(err.value) and "broken.zip" in str(err.value)


def test_resolve_dataset_downloads_extracts_and_then_uses_the_cache(server, monkeypatch, tmp_path):
    payload = _zip_bytes({"toyset/u.data": "1\t2\t3\t4\n", "toyset/README": "toy"})
    (server.root / "toyset.zip").write_bytes(payload)
    monkeypatch.setenv("DLSUITE_CACHE", str(tmp_path / "cache"))
    kwargs = dict(required=["u.data"], url=f"{server.url}/toyset.zip", sha1=hashlib.sha1(payload).hexdigest())
    root = data.resolve_dataset("toyset", **kwargs)
    assert (root / "u.data").read_text() == "1\t2\t3\t4\n"
    assert root == tmp_path / "cache" / "toyset" / "toyset"
    assert data.resolve_dataset("toyset", **kwargs) == root and server.requests == 1


def test_resolve_dataset_offline_names_what_where_and_how(monkeypatch, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("DLSUITE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DatasetError) as err:
        data.resolve_dataset("ml-100k", required=["u.data"], url=f"http://127.0.0.1:{port}/ml-100k.zip",
                             sha1="0" * 40, hint="--demo")
    message = str(err.value)
    assert "\n" not in message
    for needle in ("ml-100k not found in", str(tmp_path / "cache" / "ml-100k"), "ml-100k.zip", "--data-dir", "--demo"):
        assert needle in message


def test_demo_cache_dir_puts_the_version_on_the_last_component(monkeypatch, tmp_path):
    monkeypatch.setenv("DLSUITE_CACHE", str(tmp_path / "cache"))
    assert data.demo_cache_dir("ptb-demo", version=1) == tmp_path / "cache" / "ptb-demo-v1"
    assert data.demo_cache_dir("vision-demo", "shapes-8-2", version=3) == tmp_path / "cache" / "vision-demo" / "shapes-8-2-v3"
    for bad in (0, 1.0, "1", True):
        with pytest.raises(ValueError, match="version must be an int"):
            data.demo_cache_dir("x", version=bad)


def test_resolve_dataset_data_dir_checks(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        data.resolve_dataset("x", required=["u.data"], data_dir=tmp_path / "missing")
    (tmp_path / "d").mkdir()
    with pytest.raises(DatasetError, match=r"u\.data not found; --data-dir must hold u\.data"):
        data.resolve_dataset("x", required=["u.data"], data_dir=tmp_path / "d")
    (tmp_path / "d" / "ml-100k").mkdir()
    (tmp_path / "d" / "ml-100k" / "u.data").write_text("")
    assert data.resolve_dataset("x", required=["u.data"], data_dir=tmp_path / "d") == tmp_path / "d" / "ml-100k"
    (tmp_path / "d" / "runs" / "copy").mkdir(parents=True)
    (tmp_path / "d" / "runs" / "copy" / "u.data").write_text("")
    with pytest.raises(DatasetError, match=r"holds 2 copies \(.*ml-100k, .*copy\); pass the folder to read"):
        data.resolve_dataset("x", required=["u.data"], data_dir=tmp_path / "d")
    # declared folders narrow the search: only d/ml-100k, so the copy under runs/ is not a candidate
    assert data.resolve_dataset("x", required=["u.data"], data_dir=tmp_path / "d",
                                folders=["ml-100k"]) == tmp_path / "d" / "ml-100k"
    with pytest.raises(DatasetError, match=r"d/u\.data not found; --data-dir must hold u\.data itself, "
                                           r"or ml-1m/ holding them"):
        data.resolve_dataset("x", required=["u.data"], data_dir=tmp_path / "d", folders=["ml-1m"])
    (tmp_path / "d" / "u.data").write_text("")  # the folder itself wins over any copy below it
    assert data.resolve_dataset("x", required=["u.data"], data_dir=tmp_path / "d") == tmp_path / "d"


def test_shuffle_for_epoch_is_fixed_per_epoch_and_differs_between_epochs():
    import tensorflow as tf

    ds = tf.data.Dataset.range(50)
    order = lambda seed, epoch: [int(v) for v in data.shuffle_for_epoch(ds, 50, seed, epoch)]
    first = order(0, 3)
    assert first == order(0, 3) and sorted(first) == list(range(50))
    assert order(0, 4) != first and order(1, 3) != first
    reused = data.shuffle_for_epoch(ds, 50, 0, 3)
    assert [int(v) for v in reused] == [int(v) for v in reused]  # no reshuffle on a second pass


def test_sha1_of_streams_the_file(tmp_path):
    blob = bytes(range(256)) * 9000  # several 1 MiB chunks
    (tmp_path / "f").write_bytes(blob)
    assert data.sha1_of(tmp_path / "f") == hashlib.sha1(blob).hexdigest()


def test_epoch_seeds_do_not_overlap_across_run_seeds():
    """With seed + epoch, run seed 0 at epoch 1 replayed run seed 1 at epoch 0; SeedSequence does not."""
    seeds = {(s, e): data.epoch_seed(s, e) for s in range(20) for e in range(20)}
    assert len(set(seeds.values())) == len(seeds)
    assert data.epoch_seed(0, 1) != data.epoch_seed(1, 0)
    assert data.epoch_seed(3, 7) == data.epoch_seed(3, 7) and 0 <= data.epoch_seed(3, 7) < 2**32
    assert data.epoch_rng(0, 1).integers(1 << 30) != data.epoch_rng(1, 0).integers(1 << 30)


def test_epoch_dataset_order_is_a_seeded_permutation():
    x = np.arange(10)
    batches = lambda seed, epoch: np.concatenate([b.numpy() for b in data.epoch_dataset(x, 4, seed, epoch)])
    np.testing.assert_array_equal(batches(0, 2), x[data.epoch_rng(0, 2).permutation(10)])
    assert sorted(batches(0, 2)) == list(x) and list(batches(0, 2)) != list(batches(0, 3))


@pytest.mark.parametrize("n, batch_size", [(10, 4), (10, 5), (3, 4), (0, 4), (12, 12)])
def test_epoch_dataset_cuts_the_batches_tf_data_batch_would(n, batch_size):
    # The batches are cut in NumPy (for speed); they must be exactly `.batch(batch_size)`'s, nested
    # structure, dtypes and the short last batch included.
    arrays = (np.arange(n), (np.arange(n) * 2.0, np.arange(2 * n, dtype=np.int32).reshape(n, 2)))
    order = data.epoch_rng(3, 1).permutation(n)
    import tensorflow as tf

    expected = list(tf.data.Dataset.from_tensor_slices(tf.nest.map_structure(lambda a: a[order], arrays))
                    .batch(batch_size))
    got = list(data.epoch_dataset(arrays, batch_size, 3, 1))
    assert len(got) == len(expected) == -(-n // batch_size)
    for a, b in zip(got, expected):
        assert tf.nest.map_structure(lambda t: (t.dtype, tuple(t.shape)), a) == \
            tf.nest.map_structure(lambda t: (t.dtype, tuple(t.shape)), b)
        for u, v in zip(tf.nest.flatten(a), tf.nest.flatten(b)):
            np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("n, batch_size, order", [(10, 4, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]), (3, 4, [0, 1, 2, 0]),
                                                   (8, 4, [0, 1, 2, 3, 4, 5, 6, 7]), (0, 4, [])])
def test_epoch_dataset_fill_last_tops_the_last_batch_up_from_the_start(n, batch_size, order):
    x = np.arange(n)
    batches = [b.numpy() for b in data.epoch_dataset(x, batch_size, 3, 1, fill_last=True)]
    assert all(len(b) == batch_size for b in batches)  # one shape: an XLA step compiles once
    permutation = data.epoch_rng(3, 1).permutation(n)
    np.testing.assert_array_equal(np.concatenate(batches) if batches else [], permutation[order])


def test_fingerprint_follows_names_and_sizes(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("abc")
    first = data.fingerprint(tmp_path / "d")
    assert len(first) == 12 and data.fingerprint(tmp_path / "d") == first
    (tmp_path / "d" / "a.txt").write_text("abcd")
    assert data.fingerprint(tmp_path / "d") != first


def test_resolved_datasets_remember_what_was_read(tmp_path):
    (tmp_path / "d" / "set").mkdir(parents=True)
    (tmp_path / "d" / "set" / "f.txt").write_text("1")
    found = data.resolve_dataset("remembered", required=["f.txt"], data_dir=tmp_path / "d")
    assert data.resolved_datasets()["remembered"] == found.resolve()


def test_split_indices_holds_out_the_head_of_a_seeded_permutation():
    # np.random.default_rng(0).permutation(10) is [4 6 2 7 3 5 9 0 8 1]: 0.3 * 10 = 3 held out
    keep, held = data.split_indices(10, 0.3, 0)
    assert held.tolist() == [2, 4, 6] and keep.tolist() == [0, 1, 3, 5, 7, 8, 9]
    assert keep.dtype == held.dtype == np.int64
    # a sequence seed: np.random.default_rng([0, 15]).permutation(10) is [8 5 0 4 6 1 7 2 3 9]
    keep, held = data.split_indices(10, 0.2, [0, 15])
    assert held.tolist() == [5, 8] and len(keep) == 8
    assert data.split_indices(10, 0.25, 0)[1].tolist() == [4, 6]  # round(2.5) is 2 (half to even)
    assert data.split_indices(10, 0.01, 0)[1].tolist() == []  # round(0.1) is 0 ...
    assert data.split_indices(10, 0.01, 0, min_held=1)[1].tolist() == [4]  # ... unless at least one is asked for
    assert data.split_indices(10, 0.0, 0, min_held=1)[1].tolist() == []  # fraction 0 holds nothing out
    keep, held = data.split_indices(1000, 0.1, 7)
    assert len(held) == 100 and sorted(keep.tolist() + held.tolist()) == list(range(1000))
    assert not np.array_equal(held, data.split_indices(1000, 0.1, 8)[1])


def test_epoch_dataset_groups_come_together_in_a_new_order_each_epoch():
    x = np.arange(40)
    groups = (x * 7) % 5  # group g: every example with 7x = g (mod 5), spread over the array
    members = data.group_members(groups)
    assert [m.tolist() for m in members] == [np.flatnonzero(groups == g).tolist() for g in range(5)]
    batches = lambda epoch: np.concatenate([b.numpy() for b in data.epoch_dataset(x, 6, 3, epoch, groups=members)])
    got = batches(1)
    assert sorted(got) == list(x)
    runs = groups[got]
    assert (np.diff(runs) != 0).sum() == 4  # five runs: each group's examples are consecutive
    np.testing.assert_array_equal(batches(1), got)  # seeded
    # a new order of the groups, and within them, from epoch to epoch
    assert len({tuple(dict.fromkeys(groups[batches(e)])) for e in range(6)}) > 1
    assert len({tuple(batches(e)[groups[batches(e)] == 0]) for e in range(3)}) == 3
    assert len(list(data.epoch_dataset(np.arange(0), 4, 3, 1, groups=data.group_members(np.arange(0))))) == 0
