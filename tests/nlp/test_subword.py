"""nlp.subword (fastText n-grams) and nlp.bpe (the book's byte pair encoding example)."""
import pytest

from common.errors import UsageError
from nlp import bpe, subword
from tests.cli_helpers import run


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


def test_bpe_book_example():
    merges, symbols = bpe.learn({"fast_": 4, "faster_": 3, "tall_": 5, "taller_": 4}, 10)
    assert merges[:4] == [("t", "a"), ("ta", "l"), ("tal", "l"), ("f", "a")]
    assert bpe.segment("tallest_", symbols) == ["tall", "e", "s", "t", "_"]
    assert bpe.segment("fatter_", symbols) == ["fa", "t", "t", "er_"]
    assert bpe.segment("taq_", symbols) == ["ta", bpe.UNK]


def test_bpe_command_line(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("fast fast fast fast faster faster faster tall tall tall tall tall taller taller taller taller\n")
    code, out, err = run(bpe.main, ["learn", "--corpus", corpus, "--merges", 10, "--out", tmp_path / "m.json"], capsys)
    assert code == 0 and out["merges"] == 10, err
    code, out, _ = run(bpe.main, ["segment", "tallest", "fatter", "--merges-file", tmp_path / "m.json"], capsys)
    assert out == {"tallest": ["tall", "e", "s", "t", "_"], "fatter": ["fa", "t", "t", "er_"]}
    code, _, err = run(bpe.main, ["segment", "x", "--merges-file", tmp_path / "none.json"], capsys)
    assert code == 1 and "does not exist" in err and len(err.strip().splitlines()) == 1
