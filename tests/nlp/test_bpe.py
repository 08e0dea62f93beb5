"""nlp.bpe: merges and segmentation by hand, the book's example, the merges file and the command line."""
import pytest

from common.errors import DatasetError
from nlp import bpe
from tests.cli_helpers import run


def test_most_frequent_pair_weighs_by_frequency_and_takes_the_first_on_ties():
    assert bpe.most_frequent_pair({("a", "b", "c"): 2, ("b", "c"): 3}) == ("b", "c")  # (a,b): 2, (b,c): 5
    assert bpe.most_frequent_pair({("x", "y"): 1, ("y", "z"): 1}) == ("x", "y")
    assert bpe.most_frequent_pair({("a",): 3}) is None


def test_merge_pair_merges_every_occurrence_and_adds_up_words_that_become_equal():
    assert bpe.merge_pair({("a", "b", "a", "b"): 1, ("a", "b"): 2}, ("a", "b")) == {("ab", "ab"): 1, ("ab",): 2}
    assert bpe.merge_pair({("a", "b"): 1, ("ab",): 2}, ("a", "b")) == {("ab",): 3}
    assert bpe.merge_pair({("b", "a"): 1}, ("a", "b")) == {("b", "a"): 1}


def test_learn_and_segment_by_hand():
    # ("a", "b", "_") twice: (a, b) and (b, _) tie at 2, the first seen is merged, then (ab, _); then no pair is left
    merges, symbols = bpe.learn({"ab": 2}, 5)
    assert merges == [("a", "b"), ("ab", "_")]
    assert symbols == ["_", "a", "b", "[UNK]", "ab", "ab_"]
    assert bpe.segment("ab_", symbols) == ["ab_"]
    assert bpe.segment("ba_", symbols) == ["b", "a", "_"]
    assert bpe.segment("abc_", symbols) == ["ab", bpe.UNK]  # nothing matches "c_" or "c": the rest is unknown
    assert bpe.word_frequencies([["a", "b"], ["a"]]) == {"a": 2, "b": 1}


def test_merges_file_round_trip(tmp_path):
    merges, symbols = bpe.learn({"low": 5, "lower": 2}, 3)
    bpe.save_merges(tmp_path / "m.json", merges, symbols)
    assert bpe.load_merges(tmp_path / "m.json") == (merges, symbols)
    with pytest.raises(DatasetError, match="does not exist"):
        bpe.load_merges(tmp_path / "none.json")


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
