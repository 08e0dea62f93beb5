"""nlp.wikitext: the book's paragraph processing by hand, the split choice, the demo layout, bad input; real files."""
import pytest

from common.errors import DatasetError
from nlp import wikitext


def test_paragraphs_as_the_book_with_escapes_undone():
    lines = [" = Valkyria Chronicles = \n", " \n",
             " The game @-@ a hit . It sold 1 @,@ 000 copies in <unk> . \n",
             " One sentence only . \n",
             " A . B c . D e f . \n"]
    assert wikitext.paragraphs_of(lines) == [
        ["the game - a hit", "it sold 1 , 000 copies in unk ."],  # the book keeps the last ' .'
        ["a", "b c", "d e f ."]]
    assert wikitext.paragraphs_of(["no full stop here", " = h = "]) == []


def test_split_choice_and_demo_layout(tmp_path):
    demo = wikitext.generate_demo(tmp_path / "demo", paragraphs=(20, 5, 8))
    train, test, split = wikitext.load_splits(demo)
    assert split == "train" and len(train) == 20 and len(test) == 8
    assert all(2 <= len(p) <= 6 for p in train + test)
    # a demo paragraph keeps to one topic: its nouns come from one list only
    nouns = {w: t for t, ws in wikitext.DEMO_TOPICS.items() for w in ws}
    for paragraph in train:
        assert len({nouns[w] for s in paragraph for w in s.split() if w in nouns}) == 1
    (demo / "wiki.train.tokens").unlink()
    train, _, split = wikitext.load_splits(demo)
    assert split == "valid" and len(train) == 5
    assert wikitext.wikitext_directory(demo=True).name == "wikitext-2-demo-v1"


def test_bad_input_is_one_line(tmp_path):
    (tmp_path / "wiki.valid.tokens").write_text(" = Heading = \n \n Just one sentence . \n")
    (tmp_path / "wiki.test.tokens").write_text(" a . b . \n")
    with pytest.raises(DatasetError, match="holds no paragraph of two or more sentences") as e:
        wikitext.load_splits(tmp_path)
    assert "\n" not in str(e.value)
    (tmp_path / "wiki.valid.tokens").unlink()
    with pytest.raises(DatasetError, match="wiki.valid.tokens not found"):
        wikitext.load_splits(tmp_path)
    (tmp_path / "wiki.valid.tokens").write_bytes(b"\xff\xfe a . b .")
    with pytest.raises(DatasetError, match="is not UTF-8"):
        wikitext.load_splits(tmp_path)


def test_data_dir_is_the_files_folder_or_the_zips_wikitext_2_nothing_deeper(tmp_path, capsys):
    from nlp import bert
    from tests.cli_helpers import run

    wikitext.generate_demo(tmp_path / "zip" / "wikitext-2", paragraphs=(0, 4, 4))
    assert wikitext.wikitext_directory(tmp_path / "zip") == tmp_path / "zip" / "wikitext-2"
    assert wikitext.wikitext_directory(tmp_path / "zip" / "wikitext-2") == tmp_path / "zip" / "wikitext-2"
    # a folder that only holds a copy two levels below (e.g. /tmp and some run's cache) is no WikiText directory
    wikitext.generate_demo(tmp_path / "other" / "cache" / "wikitext-2-demo", paragraphs=(4, 4, 4))
    with pytest.raises(DatasetError, match=r"other/wiki.valid.tokens not found; --data-dir must hold "
                                           r"wiki.valid.tokens and wiki.test.tokens .* or wikitext-2/ holding them"):
        wikitext.wikitext_directory(tmp_path / "other")
    code, _, err = run(bert.main, ["pretrain", "--data-dir", tmp_path / "other", "--epochs", 1], capsys)
    assert code == 1 and "wiki.valid.tokens not found" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(DatasetError, match="does not exist"):
        wikitext.wikitext_directory(tmp_path / "missing")


def test_real_wikitext_valid_and_test(shared_data):
    train, test, split = wikitext.load_splits(shared_data / "wikitext-2")
    assert split == "valid"  # the shared copy has no train file
    assert len(train) > 1000 and len(test) > 1000
    assert all(len(p) >= 2 and all(s == s.lower() for s in p) for p in train)
    assert not any("@-@" in s or "<unk>" in s for p in train for s in p)
