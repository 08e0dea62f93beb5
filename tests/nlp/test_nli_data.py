"""nlp.nli on SNLI's and MultiNLI's own JSONL and on TFDS `snli` / `multi_nli`: the same pairs as the InferSent
files give the same batches and accuracy, '-' labels dropped, extra fields ignored, bad lines as one line; the
real SNLI dev set as JSONL gives the InferSent files' accuracy (slow)."""
import json

import numpy as np
import pytest

from nlp import nli, snli
from tests.cli_helpers import one_line, run

FLAGS = ["--epochs", 1, "--hidden", 8, "--embedding-dim", 8, "--batch-size", 32]


def jsonl_from_infersent(source, target, split, extra=False):
    """Write InferSent's `s1/s2/labels.<split>` in `source` as SNLI's `snli_1.0_<split>.jsonl` in `target`, the
    same pairs in the same order (with `extra`, MultiNLI's other fields beside them)."""
    lines = [(source / f"{stem}.{split}").read_text(encoding="utf-8").splitlines() for stem in ("s1", "s2", "labels")]
    target.mkdir(parents=True, exist_ok=True)
    rows = [{"gold_label": y.strip(), "sentence1": a, "sentence2": b,
             **({"genre": "fiction", "pairID": str(i), "annotator_labels": [y.strip()]} if extra else {})}
            for i, (a, b, y) in enumerate(zip(*lines))]
    (target / f"snli_1.0_{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return target


def test_jsonl_pairs_drop_dashes_and_ignore_extra_fields(tmp_path):
    rows = [{"gold_label": "neutral", "sentence1": "A man sleeps.", "sentence2": "He dreams.", "genre": "fiction",
             "sentence1_binary_parse": "( ( A man ) ( sleeps . ) )", "promptID": 7},
            {"gold_label": "-", "sentence1": "x", "sentence2": "y"},
            {"gold_label": "contradiction", "sentence1": "Two  Dogs run", "sentence2": "No dogs"}]
    path = tmp_path / "multinli_1.0_dev_matched.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    pairs = snli.read_jsonl(path)
    assert pairs.premises == [["a", "man", "sleeps", "."], ["two", "dogs", "run"]]  # the parse's tokens, as .txt
    assert pairs.hypotheses == [["he", "dreams."], ["no", "dogs"]]
    assert pairs.labels.tolist() == [2, 1]
    assert sorted(snli.find_splits(tmp_path)) == ["dev_matched"]
    (tmp_path / "multinli_1.0_train.jsonl").write_text(path.read_text())
    splits = snli.load_splits(tmp_path)
    assert (splits.train_name, splits.evaluation_name, len(splits.train)) == ("train", "dev_matched", 2)


def test_jsonl_gives_the_infersent_batches_and_accuracy(tmp_path, capsys):
    infersent = snli.generate_demo(tmp_path / "infersent", seed=3, sizes=(300, 0, 100))
    jsonl = jsonl_from_infersent(infersent, tmp_path / "jsonl", "train", extra=True)
    jsonl_from_infersent(infersent, jsonl, "test")
    for split in ("train", "test"):
        a, b = snli.find_splits(infersent)[split](), snli.find_splits(jsonl)[split]()
        assert a.premises == b.premises and a.hypotheses == b.hypotheses and np.array_equal(a.labels, b.labels)
    assert sorted(snli.find_splits(jsonl, "infersent")) == [] and sorted(snli.find_splits(jsonl, "jsonl")) == [
        "test", "train"]
    code, from_files, err = run(nli.main, ["train", "--data-dir", infersent, *FLAGS, "--run-dir", "i"], capsys)
    assert code == 0, err
    code, from_jsonl, err = run(nli.main, ["train", "--data-dir", jsonl, *FLAGS, "--run-dir", "j"], capsys)
    assert code == 0, err
    assert from_jsonl == {**from_files, "run_dir": "j"} and from_files["pairs"] > 90
    assert json.loads((tmp_path / "j" / "classes.json").read_text()) == list(snli.LABELS)
    code, evaluated, _ = run(nli.main, ["evaluate", "--run-dir", "j"], capsys)
    assert code == 0 and evaluated["accuracy"] == from_jsonl["accuracy"]


def test_tfds_snli_gives_the_batches_of_the_same_jsonl(tmp_path, capsys):
    tfds = pytest.importorskip("tensorflow_datasets")
    from common import tfds_source

    names = [*snli.TFDS_LABELS, "-"]  # TFDS's -1 (no gold label) is the last
    with tfds.testing.mock_data(num_examples=60):
        for split, ours in (("train", "train"), ("test", "test")):
            rows = [{"gold_label": names[e["label"]], "sentence1": e["premise"].decode(),
                     "sentence2": e["hypothesis"].decode()} for e in tfds_source.load("snli", split)]
            (tmp_path / "d").mkdir(exist_ok=True)
            (tmp_path / "d" / f"{ours}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        code, from_tfds, err = run(nli.main, ["train", "--tfds", "snli", *FLAGS, "--run-dir", "t"], capsys)
        assert code == 0, err
        code, evaluated, err = run(nli.main, ["evaluate", "--run-dir", "t", "--split", "dev"], capsys)
        assert code == 0 and evaluated["split"] == "dev" and evaluated["pairs"] == 60
    code, from_jsonl, err = run(nli.main, ["train", "--data-dir", tmp_path / "d", *FLAGS, "--run-dir", "j"], capsys)
    assert code == 0, err
    assert from_jsonl == {**from_tfds, "run_dir": "j"} and from_tfds["split"] == "test"
    assert json.loads((tmp_path / "t" / "config.json").read_text())["data"]["read"] == ["train", "test"]


@pytest.mark.parametrize("text, needles", [
    ("", ["train.jsonl is empty"]),
    ('{"gold_label": "neutral", "sentence1": "a"}\n', ["train.jsonl line 1 has no sentence2"]),
    ('{"gold_label": "neutral", "sentence1": "a", "sentence2": "b"}\n[1]\n', ["train.jsonl line 2 has no gold_label"]),
    ('\n{"gold_label": "maybe", "sentence1": "a", "sentence2": "b"}\n', ["train.jsonl line 2: unknown label 'maybe'"]),
    ('{"gold_label": "neutral", \n', ["train.jsonl line 1 is not JSON"]),
])
def test_bad_jsonl_is_one_line(tmp_path, capsys, text, needles):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "train.jsonl").write_text(text)
    code, _, err = run(nli.main, ["train", "--data-dir", tmp_path / "d", "--holdout", 0.5, "--run-dir", "r"], capsys)
    assert code == 1 and not (tmp_path / "r").exists()
    one_line(err, *needles)


@pytest.mark.slow
def test_real_snli_dev_as_jsonl_matches_infersent_files(shared_data, tmp_path, capsys):
    jsonl = jsonl_from_infersent(shared_data / "snli", tmp_path / "jsonl", "dev")
    flags = ["--holdout", 0.1, "--epochs", 3, "--embeddings", shared_data / "glove.6b.50d_top20k" / "vec.txt"]
    code, from_files, err = run(nli.main, ["train", "--data-dir", shared_data / "snli", *flags, "--run-dir", "i"],
                                capsys)
    assert code == 0, err
    code, from_jsonl, err = run(nli.main, ["train", "--data-dir", jsonl, *flags, "--run-dir", "j"], capsys)
    assert code == 0, err
    assert from_jsonl == {**from_files, "run_dir": "j"} and from_files["accuracy"] > 0.5
