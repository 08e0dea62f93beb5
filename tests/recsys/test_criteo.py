"""recsys.criteo: tokens by hand, the streamed cache against a brute-force count, block reading, the
generator, one-line errors and nothing half-written."""
import math
from collections import Counter

import numpy as np
import pytest

from common.errors import DatasetError
from recsys import criteo

INTS = ["", "0", "2", "3", "100", "-1"] + ["1"] * 7
CATS = ["0000000a", "", "FFFFFFFF", "68fd1e64"] + ["00000001"] * 22


def line(label="1", ints=INTS, cats=CATS):
    return "\t".join([label, *ints, *cats])


def test_tokens_by_hand(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(line() + "\n")
    (_, batch), = criteo._read_batches(path)
    labels, tokens = criteo.tokens_of_batch(batch, 1)
    assert labels.tolist() == [1]
    # integers: v > 2 -> floor(ln(v)^2): ln(3)^2 = 1.2 -> 1, ln(100)^2 = 21.2 -> 21; empty -> NA
    assert tokens[0, :6].tolist() == [criteo.NA, 0, 2, 1, 21, -1]
    # categoricals: 8 hex digits as their 32-bit value (either case); empty -> NA
    assert tokens[0, 13:17].tolist() == [10, criteo.NA, 2 ** 32 - 1, 0x68FD1E64]


def brute_force_cache(path, threshold, test_ratio, val_ratio, seed):
    """The prepared parts written out with Python dicts, one row at a time."""
    rows = [r.rstrip("\n").split("\t") for r in open(path)]
    u = criteo.row_uniforms(seed, 0, len(rows))
    part = ["test" if x < test_ratio else "val" if x < test_ratio + val_ratio * (1 - test_ratio) else "fit" for x in u]

    def token(f, text):
        if text == "":
            return "NA"
        if f < 13:
            v = int(text)
            return str(math.floor(math.log(v) ** 2) if v > 2 else v)
        return text.lower()

    tokens = [[token(f, text) for f, text in enumerate(r[1:])] for r in rows]
    counts = [Counter(t[f] for t, p in zip(tokens, part) if p != "test") for f in range(39)]
    keep = [{v for v, c in counts[f].items() if c >= threshold} for f in range(39)]
    # ids follow the sorted token values; the bucket (rare or unseen) is each field's last id
    order = [sorted(keep[f], key=lambda v: criteo.NA if v == "NA" else int(v, 16) if f >= 13 else int(v))
             for f in range(39)]
    dims = [len(o) + 1 for o in order]
    offsets = np.concatenate([[0], np.cumsum(dims)[:-1]])
    out = {name: ([], []) for name in criteo.PARTS}
    for r, t, p in zip(rows, tokens, part):
        ids = [offsets[f] + (order[f].index(t[f]) if t[f] in keep[f] else dims[f] - 1) for f in range(39)]
        out[p][0].append(ids)
        out[p][1].append(float(r[0]))
    return dims, out


def test_streamed_cache_matches_brute_force_on_real_rows(shared_data, tmp_path, monkeypatch):
    path = shared_data / "criteo_sample" / "criteo_train_first1000_padded.tsv"
    monkeypatch.setattr(criteo, "BLOCK_BYTES", 20_000)  # about 100 lines a block: the counts merge across blocks
    monkeypatch.setattr(criteo, "ROW_GROUP", 300)
    cache = criteo.prepare_criteo(path, threshold=3, test_ratio=0.1, val_ratio=0.1, seed=5, cache_dir=tmp_path)
    dims, expected = brute_force_cache(path, 3, 0.1, 0.1, 5)
    assert cache.field_dims == dims
    for name in criteo.PARTS:
        part = cache.part(name)
        np.testing.assert_array_equal(part.features, np.array(expected[name][0]))
        np.testing.assert_array_equal(part.labels, expected[name][1])
    assert sum(cache.rows.values()) == 1000 and 60 < cache.rows["test"] < 140
    # a second call reuses the cache; a different seed is another cache
    assert criteo.prepare_criteo(path, 3, 0.1, 0.1, 5, cache_dir=tmp_path).directory == cache.directory
    assert criteo.prepare_criteo(path, 3, 0.1, 0.1, 6, cache_dir=tmp_path).directory != cache.directory


def test_the_split_does_not_depend_on_the_block_size(tmp_path, monkeypatch):
    path = criteo.generate_criteo(tmp_path / "train.txt", 3000, chunk_rows=700)
    big = criteo.prepare_criteo(path, cache_dir=tmp_path / "a")
    monkeypatch.setattr(criteo, "BLOCK_BYTES", 30_000)
    small = criteo.prepare_criteo(path, cache_dir=tmp_path / "b")
    assert big.rows == small.rows and big.field_dims == small.field_dims
    np.testing.assert_array_equal(big.part("test").features, small.part("test").features)


def test_streaming_counts_merge_like_one_count():
    rng = np.random.default_rng(0)
    tokens = rng.zipf(1.5, (5000, 3)).astype(np.int64)
    counts = criteo.StreamingCounts(3)
    for chunk in np.array_split(tokens, 17):
        counts.add(chunk)
    for f in range(3):
        values, n = np.unique(tokens[:, f], return_counts=True)
        got_values, got_n = counts.counts(f)
        np.testing.assert_array_equal(got_values, values)
        np.testing.assert_array_equal(got_n, n)
    assert counts.vocabulary(10)[0].tolist() == values_at_least(tokens[:, 0], 10)


def values_at_least(column, threshold):
    values, n = np.unique(column, return_counts=True)
    return values[n >= threshold].tolist()


def numbered_part(tmp_path):
    """A memory-mapped part of 1000 rows whose first feature is the row's number."""
    features = np.lib.format.open_memmap(tmp_path / "f.npy", "w+", np.int32, (1000, 2))
    features[:, 0] = np.arange(1000)
    labels = np.lib.format.open_memmap(tmp_path / "l.npy", "w+", np.float32, (1000,))
    return criteo.CTRData(features, labels, [1000, 1])


def test_block_dataset_visits_every_row_once_seeded_and_sharded(tmp_path):
    part = numbered_part(tmp_path)

    def rows(epoch, replicas=(0, 1, 1)):
        batches = list(criteo.block_dataset(part, 64, seed=3, epoch=epoch, block_rows=128, replicas=replicas))
        assert all(int(x.shape[0]) == 64 // replicas[2] for x, _ in batches[:-replicas[1]])
        return np.concatenate([x.numpy()[:, 0] for x, _ in batches])

    first = rows(0)
    assert sorted(first.tolist()) == list(range(1000))
    np.testing.assert_array_equal(rows(0), first)
    assert not np.array_equal(rows(1), first)
    a, b = rows(0, (0, 1, 2)), rows(0, (1, 1, 2))
    assert not set(a) & set(b) and sorted(np.concatenate([a, b]).tolist()) == list(range(1000))


def test_replicas_train_on_pieces_of_the_global_batches_of_one_replica(tmp_path):
    # 1000 rows, batches of 64: 15 full batches and one of 40, as on one replica; over 4 replicas each step
    # is 4 pieces of 16 (the last 4 of 10), pipeline (2, 2, 4) yields the third and fourth of each
    part = numbered_part(tmp_path)

    def batches(replicas, batch_size=64, rows=part):
        data = criteo.block_dataset(rows, batch_size, seed=3, epoch=0, block_rows=100, replicas=replicas)
        out = [x.numpy()[:, 0] for x, _ in data]
        assert int(data.cardinality()) == len(out)
        return out

    one = batches((0, 1, 1))
    assert [len(b) for b in one] == [64] * 15 + [40]
    pieces = [batches((r, 1, 4)) for r in range(4)]
    assert [len(b) for b in pieces[0]] == [16] * 15 + [10]
    for step, batch in enumerate(one):
        np.testing.assert_array_equal(np.concatenate([p[step] for p in pieces]), batch)
    two = batches((2, 2, 4))
    assert len(two) == 2 * 16 and all(np.array_equal(two[2 * s + i], pieces[2 + i][s])
                                      for s in range(16) for i in range(2))
    # a last batch of 3 rows cannot feed 4 replicas: it is left out for all of them (999 = 3 x 332 + 3)
    short = criteo.CTRData(part.features[:999], part.labels[:999], [1000, 1])
    assert [len(b) for b in batches((0, 1, 4), batch_size=332, rows=short)] == [83] * 3
    assert [len(b) for b in batches((0, 1, 1), batch_size=332, rows=short)] == [332] * 3 + [3]
    with pytest.raises(ValueError, match="does not split into 3 equal pieces"):
        batches((0, 1, 3))


def test_iterating_a_block_dataset_again_replays_its_epoch(tmp_path):
    # Keras iterates an epoch's dataset once more under MirroredStrategy (to build), as the multi-worker
    # build did: a generator sharing one random generator across iterations shuffled differently then
    part = numbered_part(tmp_path)
    for replicas in ((0, 1, 1), (1, 1, 2)):
        data = criteo.block_dataset(part, 64, seed=3, epoch=2, block_rows=128, replicas=replicas)
        next(iter(data))
        first, again = ([x.numpy()[:, 0] for x, _ in data] for _ in range(2))
        assert len(first) == len(again) == 16
        for a, b in zip(first, again):
            np.testing.assert_array_equal(a, b)


def test_read_rows_reads_a_memory_maps_rows_from_its_file(tmp_path):
    # block_dataset reads a part's rows with plain reads (bounded RSS); they must be the map's rows
    features = np.arange(7 * 39, dtype=np.int32).reshape(7, 39)
    labels = np.arange(7, dtype=np.float32)
    np.save(tmp_path / "f.npy", features)
    np.save(tmp_path / "l.npy", labels)
    mapped = np.load(tmp_path / "f.npy", mmap_mode="r")
    for start, stop in [(0, 3), (2, 7), (5, 100), (7, 9)]:
        got = criteo.read_rows(mapped, start, stop)
        assert not isinstance(got, np.memmap) and got.shape == features[start:stop].shape
        np.testing.assert_array_equal(got, features[start:stop])
    np.testing.assert_array_equal(criteo.read_rows(mapped[2:], 1, 3), features[3:5])  # a view: sliced
    np.testing.assert_array_equal(criteo.read_rows(np.load(tmp_path / "l.npy", mmap_mode="r"), 3, 6), labels[3:6])
    np.testing.assert_array_equal(criteo.read_rows(features, 1, 2), features[1:2])


def test_generator_writes_the_kaggle_layout(tmp_path):
    path = criteo.generate_criteo(tmp_path / "train.txt", 2500, chunk_rows=1000)
    lines = path.read_text().splitlines()
    assert len(lines) == 2500 and {len(r.split("\t")) for r in lines} == {40}
    fields = [r.split("\t") for r in lines]
    assert {r[0] for r in fields} == {"0", "1"}
    cats = [v for r in fields for v in r[14:]]
    assert 0.05 < cats.count("") / len(cats) < 0.15
    assert all(len(v) == 8 and int(v, 16) >= 0 for v in cats if v)
    labels = np.array([int(r[0]) for r in fields])
    assert 0.1 < labels.mean() < 0.6


@pytest.mark.parametrize("bad, message", [
    ("\t".join(["1"] * 12), "line 3: expected 40 fields (label, 13 integer and 26 categorical), got 12"),
    (line(label="2"), "line 3: label '2' is not 0 or 1"),
    (line(ints=["x"] + INTS[1:]), "line 3: integer I1 'x' is not a number"),
    (line(cats=["zz"] + CATS[1:]), "line 3: categorical C1 'zz' is not 8 hex digits"),
    (line(cats=["0000000g"] + CATS[1:]), "line 3: categorical C1 '0000000g' is not 8 hex digits"),
])
def test_bad_lines_are_one_line_errors_and_leave_no_cache(tmp_path, bad, message):
    path = tmp_path / "train.txt"
    path.write_text(line() + "\n" + line(label="0") + "\n" + bad + "\n" + line() + "\n")
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        criteo.prepare_criteo(path, cache_dir=tmp_path / "cache")
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert not any((tmp_path / "cache").glob("*")) if (tmp_path / "cache").exists() else True


def test_a_failure_in_the_second_pass_closes_every_part_file_and_leaves_no_cache(tmp_path, monkeypatch):
    path = criteo.generate_criteo(tmp_path / "train.txt", 3000, chunk_rows=700)
    monkeypatch.setattr(criteo, "BLOCK_BYTES", 30_000)  # several blocks: the failure comes mid-pass
    opened, encoded = [], []
    writer = criteo._npy_writer
    monkeypatch.setattr(criteo, "_npy_writer", lambda *args: opened.append(writer(*args)) or opened[-1])
    encode = criteo.FieldVocabulary.encode

    def encode_then_fail(self, tokens):  # e.g. a full disk or Ctrl-C while the parts are written
        if encoded:
            raise OSError("no space left on device")
        encoded.append(len(tokens))
        return encode(self, tokens)

    monkeypatch.setattr(criteo.FieldVocabulary, "encode", encode_then_fail)
    with pytest.raises(OSError, match="no space left"):
        criteo.prepare_criteo(path, cache_dir=tmp_path / "cache")
    assert len(opened) == 6 and encoded and all(f.closed for f in opened)  # features + labels of 3 parts
    assert not any((tmp_path / "cache").glob("*"))
