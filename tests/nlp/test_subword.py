"""nlp.subword: fastText's n-grams and hashes, and the n-gram table a --subwords run keeps for readers."""
import numpy as np
import pytest

from common.errors import DatasetError, UsageError
from nlp import subword


def test_char_ngrams_of_where_as_in_the_book():
    assert subword.char_ngrams("where", 3, 3) == ["<wh", "whe", "her", "ere", "re>"]
    grams = subword.char_ngrams("where", 3, 6)
    assert len(grams) == 5 + 4 + 3 + 2 and "<where>" not in grams and "<wher" in grams


def test_fnv1a_reference_values_and_buckets():
    # The FNV-1a 32-bit test vectors of the reference implementation.
    assert subword.fnv1a_32("") == 0x811C9DC5
    assert subword.fnv1a_32("a") == 0xE40C292C
    assert subword.fnv1a_32("foobar") == 0xBF9CF968
    rows = subword.ngram_buckets("where", 3, 3, 1000)
    assert rows.tolist() == [subword.fnv1a_32(g) % 1000 for g in ["<wh", "whe", "her", "ere", "re>"]]
    ids, mask = subword.ngram_table(["a", "where"], 3, 3, 1000)
    assert ids.shape == (2, 5) and mask.sum(1).tolist() == [0, 5] and ids[1].tolist() == rows.tolist()


def test_parse_range():
    assert subword.parse_range("3-6") == (3, 6) and subword.parse_range("") is None
    with pytest.raises(UsageError, match="3-6"):
        subword.parse_range("6-3")


def test_subword_vectors_average_the_rows_of_a_words_ngrams_and_round_trip(tmp_path):
    table = np.arange(8, dtype=np.float32).reshape(4, 2)  # bucket b's row is [2b, 2b + 1]
    vectors = subword.SubwordVectors(table, 3, 3)
    rows = [subword.fnv1a_32(g) % 4 for g in ("<ab", "ab>")]
    assert vectors("ab").tolist() == [sum(2 * r for r in rows) / 2, sum(2 * r + 1 for r in rows) / 2]
    assert vectors("") is None  # "<>" has no 3-gram
    vectors.save(tmp_path / subword.TABLE_FILE)
    loaded = subword.SubwordVectors.load(tmp_path / subword.TABLE_FILE)
    assert np.array_equal(loaded.table, table) and (loaded.min_n, loaded.max_n) == (3, 3)
    assert loaded.table.dtype == np.float32 and loaded("ab").tolist() == vectors("ab").tolist()
    assert sorted(p.name for p in tmp_path.iterdir()) == [subword.TABLE_FILE]  # no temporary file left


def test_a_damaged_ngram_table_is_one_line(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an archive")
    with open(tmp_path / "other.npz", "wb") as f:
        np.savez(f, table=np.zeros((3, 2), np.float32), ngram_range=np.array([4, 3]))
    for path in (bad, tmp_path / "other.npz", tmp_path / "missing.npz"):
        with pytest.raises(DatasetError, match="is corrupt") as e:
            subword.SubwordVectors.load(path)
        assert "\n" not in str(e.value)
