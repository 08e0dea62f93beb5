"""nlp.sentiment on the user's own data: CSV/TSV/JSONL tables and class folders (any number of classes,
named in classes.json), TFDS `imdb_reviews` giving the same batches as a table of the same examples, and
bad input as one line."""
import json
from types import SimpleNamespace

import numpy as np
import pytest

from nlp import imdb, sentiment, text_tables
from nlp.sentiment_model import labelled_reviews
from tests.cli_helpers import one_line, run, tree_digest

TRAIN = [("A great movie!", "pos"), ("dull, boring film", "neg"), ("it was fine", "meh"),
         ("Loved it", "pos"), ("worst plot ever", "neg")]
TEST = [("so boring", "neg"), ("great acting", "pos"), ("fine i guess", "meh")]
NAMES = ["meh", "neg", "pos"]


def _write(directory, fmt, rows_of, columns=("text", "label")):
    directory.mkdir(parents=True, exist_ok=True)
    for split, rows in rows_of.items():
        path = directory / f"{split}.{fmt}"
        if fmt == "jsonl":
            path.write_text("".join(json.dumps({columns[0]: t, columns[1]: y, "id": i}) + "\n"
                                    for i, (t, y) in enumerate(rows)))
        else:
            sep = "\t" if fmt == "tsv" else ","
            quote = (lambda t: t) if fmt == "tsv" else (lambda t: f'"{t}"')
            path.write_text(f"id{sep}{columns[0]}{sep}{columns[1]}\n"
                            + "".join(f"{i}{sep}{quote(t)}{sep}{y}\n" for i, (t, y) in enumerate(rows)))
    return directory


def _ctx(data_dir, fmt="auto", columns="text,label"):
    return SimpleNamespace(tfds=None, data_dir=data_dir, demo=False,
                           config=sentiment.Config(format=fmt, columns=columns))


def _folders(directory, rows_of):
    for split, rows in rows_of.items():
        for i, (text, label) in enumerate(rows):
            (directory / split / label).mkdir(parents=True, exist_ok=True)
            (directory / split / label / f"{i}.txt").write_text(text)
    return directory


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
def test_tables_read_as_tokens_labels_and_sorted_classes(tmp_path, fmt):
    (train, test), names = labelled_reviews(_ctx(_write(tmp_path, fmt, {"train": TRAIN, "test": TEST})))
    assert names == NAMES
    assert train.tokens == [["a", "great", "movie", "!"], ["dull", "boring", "film"], ["it", "was", "fine"],
                            ["loved", "it"], ["worst", "plot", "ever"]]
    assert train.labels.tolist() == [2, 1, 0, 2, 1] and test.labels.tolist() == [1, 2, 0]
    assert train.labels.dtype == np.int32
    (again,), _ = labelled_reviews(_ctx(tmp_path), ("test",), names=["meh", "neg", "pos"])
    assert again.tokens == test.tokens and again.labels.tolist() == [1, 2, 0]


def test_other_columns_numeric_labels_and_folders(tmp_path):
    rows = {"train": [(t, str(10 - 3 * NAMES.index(y))) for t, y in TRAIN], "test": [("great", "10"), ("meh", "4")]}
    _write(tmp_path / "t", "csv", rows, columns=("review", "stars"))
    (train, _), names = labelled_reviews(_ctx(tmp_path / "t", "table", "review,stars"))
    assert names == ["4", "7", "10"] and train.labels.tolist() == [0, 1, 2, 0, 1]  # numeric order, not "10" < "4"
    (train, test), names = labelled_reviews(_ctx(_folders(tmp_path / "f" / "aclImdb", {"train": TRAIN, "test": TEST})
                                                 .parent))
    assert names == NAMES and sorted(train.labels.tolist()) == [0, 1, 1, 2, 2]
    assert test.tokens == [["fine", "i", "guess"], ["so", "boring"], ["great", "acting"]]  # folder by folder
    assert imdb.class_names(("neg", "pos")) == ["negative", "positive"]


def test_three_classes_train_evaluate_predict(tmp_path, capsys):
    rng = np.random.default_rng(0)
    words = {"meh": "fine okay average", "neg": "awful boring dull", "pos": "great superb loved"}
    rows = {split: [(f"{' '.join(rng.choice(words[y].split(), 3))} the film", y)
                    for y in rng.choice(NAMES, n)] for split, n in (("train", 60), ("test", 12))}
    data = _write(tmp_path / "data", "jsonl", rows)
    code, out, err = run(sentiment.main, ["train", "--data-dir", data, "--epochs", 1, "--embedding-dim", 8,
                                          "--channels", "4,4,4", "--min-freq", 1, "--run-dir", "r"], capsys)
    assert code == 0, err
    assert out["test_reviews"] == 12 and out["train_reviews"] == 54
    assert json.loads((tmp_path / "r" / "classes.json").read_text()) == NAMES
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert (config["format"], config["columns"]) == ("auto", "text,label")
    code, evaluated, _ = run(sentiment.main, ["evaluate", "--run-dir", "r"], capsys)
    assert code == 0 and evaluated == {"accuracy": out["accuracy"], "test_reviews": 12}
    code, predicted, _ = run(sentiment.main, ["predict", "--run-dir", "r", "superb and great"], capsys)
    assert code == 0 and predicted["label"] in NAMES and sorted(predicted["probabilities"]) == NAMES
    assert sum(predicted["probabilities"].values()) == pytest.approx(1, abs=1e-3)
    assert predicted["probability"] == max(predicted["probabilities"].values())
    before = tree_digest(tmp_path / "r")
    for flags, needle in ((["--tfds", "imdb_reviews"], "continues on the same data"),
                          (["--columns", "review,label"], "was trained with --columns text,label")):
        code, _, err = run(sentiment.main, ["train", "--resume", "--run-dir", "r", "--epochs", 2, *flags], capsys)
        assert code == 2
        one_line(err, needle)
    assert tree_digest(tmp_path / "r") == before


def test_tfds_imdb_reviews_gives_the_batches_of_the_same_table(tmp_path, capsys):
    tfds = pytest.importorskip("tensorflow_datasets")
    from common import tfds_source

    flags = ["--epochs", 1, "--embedding-dim", 8, "--channels", "4,4,4", "--min-freq", 1, "--max-len", 16]
    with tfds.testing.mock_data(num_examples=40):
        rows = {split: [(e["text"].decode(), imdb.LABELS[e["label"]]) for e in tfds_source.load("imdb_reviews", split)]
                for split in ("train", "test")}
        code, from_tfds, err = run(sentiment.main, ["train", "--tfds", "imdb_reviews", *flags, "--run-dir", "t"],
                                   capsys)
    assert code == 0, err
    data = _write(tmp_path / "table", "csv", rows)
    (train, test), names = labelled_reviews(_ctx(data))
    assert names == ["negative", "positive"] and len(train) == 40
    code, from_table, err = run(sentiment.main, ["train", "--data-dir", data, *flags, "--run-dir", "c"], capsys)
    assert code == 0, err
    assert from_table == {**from_tfds, "run_dir": "c"}  # same vocabulary, batches, loss and accuracies
    source = json.loads((tmp_path / "t" / "config.json").read_text())["data"]
    assert source["tfds"] == "imdb_reviews" and source["read"] == ["train", "test"]


@pytest.mark.parametrize("files, argv, needles", [
    ({"train.csv": "review,label\nnice,pos\n", "test.csv": "review,label\nbad,neg\n"}, [],
     ["train.csv has no column 'text' (columns: review, label)", "--columns"]),
    ({"train.csv": "text,label\nnice,pos\ngood,pos\n", "test.csv": "text,label\nok,pos\n"}, [],
     ["train.csv: the label column holds one class only ('pos')"]),
    ({"train.jsonl": "", "test.jsonl": '{"text": "a", "label": "x"}\n'}, [], ["train.jsonl is empty"]),
    ({"train.jsonl": '{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n', "test.jsonl": '{"text": "a"\n'},
     [], ["test.jsonl line 1 is not JSON"]),
    ({"train.tsv": "text\tlabel\na\tx\nb\ty\n", "test.tsv": "text\tlabel\na\tx\nb\tz\n"}, [],
     ["test.tsv row 2: label 'z' is not one of the training classes (x, y)"]),
    ({"train.jsonl": '{"text": "a", "label": "x"}\n\n{"text": "b", "label": "y"}\n', "test.jsonl": '{"text": "c", '
      '"label": "x"}\n{"text": "d", "label": "w"}\n'}, [], ["test.jsonl line 2: label 'w' is not one of"]),
    ({"train.csv": 'text,label\n"a\nb",x\nc,\n', "test.csv": "text,label\na,x\n"}, [],
     ["train.csv row 2 (after the header) has no 'label'"]),
    ({"train.csv": "text,label\n...,x\nb,y\n", "test.csv": "text,label\na,x\n"}, [],
     ["train.csv row 1: the text holds no words"]),
    ({"train.csv": "text,label\na,x\n", "test.csv": "t\n", "train/x/0.txt": "a", "test/x/0.txt": "a"}, [],
     ["holds table layout and folders layout; pass --format"]),
    ({"notes.txt": "a"}, [], ["neither train.csv/.tsv/.jsonl tables nor train/ and test/ class folders"]),
    ({"train/x/0.txt": "a", "test/x/0.txt": "a"}, [], ["train holds 1 class folder;"]),
])
def test_bad_tables_are_one_line(tmp_path, capsys, files, argv, needles):
    for name, text in files.items():
        (tmp_path / "d" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "d" / name).write_text(text)
    code, _, err = run(sentiment.main, ["train", "--data-dir", tmp_path / "d", *argv, "--run-dir", "r"], capsys)
    assert code == 1 and not (tmp_path / "r").exists()
    one_line(err, *needles)


def test_bad_columns_flag_is_usage(capsys):
    code, _, err = run(sentiment.main, ["train", "--demo", "--columns", "text", "--run-dir", "r"], capsys)
    assert code == 2
    one_line(err, "--columns takes two column names, the text's and the label's")
    assert text_tables.parse_columns(" review , stars ") == ("review", "stars")
