"""nlp.text: tokens, the vocabulary, padding, coverage, the no-basis warning and the text-file checks, by hand."""
import re

import numpy as np
import pytest

from common.errors import DatasetError
from nlp import text
from nlp.text import Vocab, tokenize


def test_vocab_order_min_freq_reserved_and_counts():
    vocab = Vocab(tokenize(["b a a c", "a b d"]), min_freq=2, reserved_tokens=["<pad>"])
    assert vocab.idx_to_token == ["<unk>", "<pad>", "a", "b"]
    assert vocab[["a", "b", "zzz"]] == [2, 3, 0] and vocab.to_tokens([3, 2]) == ["b", "a"]
    assert vocab.counts.tolist() == [0, 0, 3, 2]


def test_tokenize_words_and_characters_and_count_them():
    assert tokenize(["a b  c", ""]) == [["a", "b", "c"], []]
    assert tokenize(["ab c"], token="char") == [["a", "b", " ", "c"]]
    with pytest.raises(ValueError, match="unknown token type 'byte'"):
        tokenize(["a"], token="byte")
    assert text.count_corpus([["a", "b"], ["a"]]) == {"a": 2, "b": 1}
    assert text.count_corpus(["a", "a"]) == {"a": 2} and text.count_corpus([]) == {}


def test_vocab_ties_are_alphabetical_and_from_tokens_keeps_the_order():
    vocab = Vocab([["b", "a", "c", "c"]])
    assert vocab.idx_to_token == ["<unk>", "c", "a", "b"] and len(vocab) == 4 and "a" in vocab and "z" not in vocab
    assert vocab.encode(["b", "z", "c"]).tolist() == [3, 0, 1] and vocab.encode(["a"]).dtype == np.int32
    assert vocab["z"] == vocab.unk == 0 and vocab.to_tokens(np.array([1, 0])) == ["c", "<unk>"]
    saved = Vocab.from_tokens(["<unk>", "x", "y"], [0, 5, 2])
    assert saved.idx_to_token == ["<unk>", "x", "y"] and saved["y"] == 2 and saved.counts.tolist() == [0, 5, 2]
    assert Vocab.from_tokens(["<unk>", "x"]).counts.tolist() == [0, 0]


def test_encode_padded_truncates_and_pads_on_the_right():
    vocab = Vocab.from_tokens(["<unk>", "<pad>", "a", "b"])
    out = text.encode_padded(vocab, [["a", "b", "zzz"], [], ["b"]], 2, 1)
    assert out.tolist() == [[2, 3], [1, 1], [3, 1]] and out.dtype == np.int32
    assert text.encode_padded(vocab, [[], []], 3, 1).tolist() == [[1, 1, 1], [1, 1, 1]]


def test_coverage_counts_reserved_tokens_as_unknown():
    vocab = Vocab.from_tokens(["<unk>", "<pad>", "a", "b"])
    assert text.coverage(vocab, ["a", "<pad>", "zzz", "b"]) == {"words": 4, "unknown_words": 2, "known_fraction": 0.5}
    assert text.coverage(vocab, ["a", "a", "zzz"]) == {"words": 3, "unknown_words": 1, "known_fraction": 0.6667}
    assert text.coverage(vocab, []) == {"words": 0, "unknown_words": 0, "known_fraction": 0.0}
    assert text.is_reserved("[CLS]") and text.is_reserved("<UNK>") and not text.is_reserved("cat")


def test_warn_no_basis_is_one_line(capsys):
    text.warn_no_basis("the review", 1, 20)
    text.warn_no_basis("the premise", 3, 20)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert err[0].startswith("warning: no word of the review (1 word) is in the model's vocabulary (20 tokens)")
    assert "(3 words)" in err[1]


def test_text_files_are_checked_before_they_are_read(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("één\ntwo\n", encoding="utf-8")
    assert text.read_lines(good) == ["één", "two"] and text.check_text(good) == good
    (tmp_path / "nul.txt").write_bytes(b"abc\x00d")
    (tmp_path / "latin.txt").write_bytes(b"ab\xe9c")
    (tmp_path / "folder").mkdir()
    cases = [("nul.txt", re.escape("nul.txt is binary, not text (a NUL byte at byte 3); pass a plain UTF-8 text file")),
             ("latin.txt", re.escape("latin.txt is not UTF-8 text (byte 2); pass a plain UTF-8 text file")),
             ("folder", "text file .*folder is a folder, not a file"),
             ("missing.txt", "text file .*missing.txt does not exist")]
    for name, says in cases:
        for read in (text.read_lines, text.check_text):
            with pytest.raises(DatasetError, match=says):
                read(tmp_path / name)
    # check_text reads only the head: a character cut at its end is fine, a NUL byte within it is not
    cut = tmp_path / "cut.txt"
    cut.write_bytes("é".encode() * 3)
    assert text.check_text(cut, head=5) == cut
    with pytest.raises(DatasetError, match="is not UTF-8 text"):
        text.read_lines(tmp_path / "latin.txt", "vocabulary", "restore it")
