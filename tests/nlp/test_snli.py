"""nlp.snli: both SNLI layouts on hand-written files (parentheses stripped, '-' dropped, counts),
the one-line errors, the seeded hold-out split, the demo generator, and the real dev set."""
import numpy as np
import pytest

from common.errors import DatasetError, UsageError
from nlp import classify, snli

HEADER = "gold_label\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1\tsentence2\n"


def _official(path, rows):
    path.write_text(HEADER + "".join(f"{label}\t{a}\t{b}\tx\ty\n" for label, a, b in rows))
    return path


def test_official_layout_strips_parentheses_and_drops_dash(tmp_path):
    path = _official(tmp_path / "snli_1.0_dev.txt", [
        ("neutral", "( ( A man ) ( is ( sleeping . ) ) )", "( ( The man ) ( is ( tired . ) ) )"),
        ("-", "( A dog )", "( A cat )"),
        ("contradiction", "( ( Two  women ) ( are ( hugging . ) ) )", "( Nobody ( is ( hugging . ) ) )"),
    ])
    pairs = snli.read_official(path)
    assert len(pairs) == 2
    assert pairs.premises == [["a", "man", "is", "sleeping", "."], ["two", "women", "are", "hugging", "."]]
    assert pairs.hypotheses[1] == ["nobody", "is", "hugging", "."]
    assert pairs.labels.tolist() == [2, 1]  # the book's order: entailment 0, contradiction 1, neutral 2
    assert snli.strip_parse("( ( A  man ) ( sleeps . ) )") == "A man sleeps ."


def test_tokenised_layout_counts_and_dash(tmp_path):
    (tmp_path / "s1.dev").write_text("A man sleeps .\nA dog runs .\nTwo cats .\n")
    (tmp_path / "s2.dev").write_text("Someone sleeps .\nA cat runs .\nCats .\n")
    (tmp_path / "labels.dev").write_text("entailment\n-\nentailment\n")
    pairs = snli.read_tokenised(tmp_path, "dev")
    assert len(pairs) == 2 and pairs.labels.tolist() == [0, 0]
    assert pairs.premises[1] == ["two", "cats", "."]


def test_bad_files_are_one_line_errors(tmp_path):
    (tmp_path / "s1.dev").write_text("a\nb\nc\n")
    (tmp_path / "s2.dev").write_text("a\nb\n")
    (tmp_path / "labels.dev").write_text("neutral\nneutral\nneutral\n")
    with pytest.raises(DatasetError, match=r"s1.dev has 3 lines but s2.dev has 2"):
        snli.read_tokenised(tmp_path, "dev")
    (tmp_path / "s2.dev").write_text("a\nb\nc\n")
    (tmp_path / "labels.dev").write_text("neutral\nmaybe\nneutral\n")
    with pytest.raises(DatasetError, match=r"labels.dev line 2: unknown label 'maybe'"):
        snli.read_tokenised(tmp_path, "dev")
    path = _official(tmp_path / "snli_1.0_test.txt", [("entailment", "( a b )", "( a )"), ("yes", "( a )", "( b )")])
    with pytest.raises(DatasetError, match=r"line 3: unknown label 'yes'"):
        snli.read_official(path)
    (tmp_path / "labels.dev").unlink()
    with pytest.raises(DatasetError, match=r"SNLI file .*labels.dev does not exist"):
        snli.read_tokenised(tmp_path, "dev")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no snli_1.0_<split>.txt, <split>.jsonl nor s1/s2/labels"):
        snli.snli_directory(tmp_path / "empty")


def test_data_dir_is_the_files_folder_or_the_zips_snli_1_0_nothing_deeper(tmp_path):
    extracted = snli.generate_demo(tmp_path / "zip" / "snli_1.0", sizes=(10, 10, 10), layout="official")
    assert {snli.snli_directory(given) for given in (extracted.parent, extracted)} == {extracted}
    # a folder that only holds a copy further down (e.g. /tmp and some run's cache) is no SNLI directory
    snli.generate_demo(tmp_path / "other" / "cache" / "snli-demo", sizes=(10, 10, 10))
    with pytest.raises(DatasetError, match=r"no snli_1.0_<split>.txt, <split>.jsonl nor s1/s2/labels.<split> files "
                                           r"in .*other \(nor in its snli_1.0/ or multinli_1.0/\)"):
        snli.snli_directory(tmp_path / "other")


def test_load_splits_trains_on_dev_minus_holdout(tmp_path):
    snli.generate_demo(tmp_path, sizes=(0, 200, 0), unlabelled=0.0)
    with pytest.raises(UsageError, match="pass --holdout 0.1"):
        snli.load_splits(tmp_path)
    splits = snli.load_splits(tmp_path, holdout=0.1, val_ratio=0.1, seed=0)
    assert splits.train_name == "dev" and splits.evaluation_name == "holdout"
    assert (len(splits.train), len(splits.val), len(splits.evaluation)) == (162, 18, 20)
    dev = snli.read_tokenised(tmp_path, "dev")
    kept, held = classify.holdout_indices(200, 0.1, 0)
    assert splits.evaluation.premises == [dev.premises[i] for i in held]
    assert np.array_equal(splits.evaluation.labels, dev.labels[held])


def test_read_evaluation_reads_only_the_split_it_scores(tmp_path, monkeypatch):
    snli.generate_demo(tmp_path, sizes=(0, 200, 50), unlabelled=0.0)
    reads = []
    monkeypatch.setattr(snli, "read_tokenised", lambda d, split, read=snli.read_tokenised: reads.append(split)
                        or read(d, split))
    assert snli.read_evaluation(tmp_path)[0] == "test" and reads == ["test"]
    reads.clear()
    name, pairs = snli.read_evaluation(tmp_path, holdout=0.1, seed=0)  # the held-back part of dev (trained on)
    assert name == "holdout" and reads == ["dev"]
    expected = snli.load_splits(tmp_path, holdout=0.1, val_ratio=0.1, seed=0).evaluation
    assert pairs.premises == expected.premises and np.array_equal(pairs.labels, expected.labels)
    reads.clear()
    assert snli.read_evaluation(tmp_path, "dev", holdout=0.1)[0] == "dev" and reads == ["dev"]
    with pytest.raises(UsageError, match="no split 'holdout' here; choose one of dev, test"):
        snli.read_evaluation(tmp_path, "holdout")


def test_demo_layouts_read_the_same(tmp_path):
    snli.generate_demo(tmp_path / "tok", sizes=(60, 20, 20))
    snli.generate_demo(tmp_path / "off", sizes=(60, 20, 20), layout="official")
    a = snli.load_splits(snli.snli_directory(tmp_path / "tok"))
    b = snli.load_splits(snli.snli_directory(tmp_path / "off"))
    assert a.train.premises == b.train.premises and a.train.hypotheses == b.train.hypotheses
    assert np.array_equal(a.train.labels, b.train.labels) and a.evaluation_name == "test"
    assert 55 <= len(a.train) <= 60  # 2% are labelled '-' and dropped
    assert min(np.bincount(a.train.labels, minlength=3)) > 10


def test_real_snli_dev(shared_data):
    splits = snli.load_splits(snli.snli_directory(shared_data / "snli"), holdout=0.1, seed=0)
    total = len(splits.train) + len(splits.val) + len(splits.evaluation)
    assert total == 9842 and len(splits.evaluation) == 984
    counts = np.bincount(splits.evaluation.labels, minlength=3)
    assert counts.max() / counts.sum() < 0.4  # the three labels are roughly balanced
