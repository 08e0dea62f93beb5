"""nlp.sentiment: TextCNN and the BiRNN learn the demo reviews' sentiment words, 2 replicas = 1,
evaluate/predict, bad input, and both models above 0.70 on the real IMDb subset (slow)."""
import pytest

from nlp import imdb, sentiment
from tests.cli_helpers import one_replica_vs_two, run


def test_textcnn_learns_demo_and_two_replicas_match_one(capsys, monkeypatch):
    single, mirrored = one_replica_vs_two(sentiment.main, ["--demo", "--model", "textcnn", "--dropout", 0], capsys)
    assert single["accuracy"] >= 0.85 and single["test_reviews"] == 500  # chance is 0.5; measured 0.88
    assert single["train_reviews"] == 900
    assert mirrored["loss"] == pytest.approx(single["loss"], rel=2e-2, abs=2e-3)
    assert mirrored["accuracy"] == pytest.approx(single["accuracy"], abs=2e-2)
    reads = []  # evaluate reads the test reviews once; the vocabulary comes from the run
    monkeypatch.setattr(imdb, "read_imdb", lambda d, split, *classes, read=imdb.read_imdb: reads.append(split)
                        or read(d, split, *classes))
    code, evaluated, _ = run(sentiment.main, ["evaluate", "--run-dir", "single"], capsys)
    assert code == 0 and evaluated == {"accuracy": single["accuracy"], "test_reviews": 500}
    assert reads == ["test"]
    code, out, _ = run(sentiment.main, ["predict", "--run-dir", "single", "the movie was brilliant, a masterpiece. "
                                        "wonderful acting, i loved it"], capsys)
    assert code == 0 and out["label"] == "positive" and out["probability"] > 0.5
    assert (out["words"], out["unknown_words"], out["known_fraction"]) == (11, 0, 1.0)  # all demo words
    code, out, _ = run(sentiment.main, ["predict", "--run-dir", "single", "boring and stupid, the worst plot"], capsys)
    assert code == 0 and out["label"] == "negative"


def test_birnn_learns_demo(capsys):
    code, result, err = run(sentiment.main, ["train", "--demo", "--model", "birnn"], capsys)
    assert code == 0, err
    assert result["accuracy"] >= 0.85


def test_sentiment_bad_input_is_one_line(tmp_path, capsys):
    for split in ("train", "test"):
        for folder in ("pos", "neg"):
            (tmp_path / split / folder).mkdir(parents=True)
            (tmp_path / split / folder / "0_1.txt").write_text("fine words")
    (tmp_path / "train" / "neg" / "1_1.txt").write_text("")
    code, _, err = run(sentiment.main, ["train", "--data-dir", tmp_path], capsys)
    assert code == 1 and "train/neg/1_1.txt is empty" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(sentiment.main, ["train", "--demo", "--kernel-sizes", "3,4", "--channels", "8,8,8"], capsys)
    assert code == 2 and "--kernel-sizes has 2 widths but --channels has 3 counts" in err


@pytest.mark.slow
@pytest.mark.parametrize("model, epochs", [("birnn", 5), ("textcnn", 10)])
def test_real_imdb_subset_with_glove(shared_data, model, epochs, capsys):
    code, result, err = run(sentiment.main, ["train", "--data-dir", shared_data / "aclImdb_subset", "--model", model,
                                             "--epochs", epochs,
                                             "--embeddings", shared_data / "glove.6b.50d_top20k" / "vec.txt"], capsys)
    assert code == 0, err
    assert result["test_reviews"] == 2000 and result["accuracy"] > 0.70
