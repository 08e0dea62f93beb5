"""nlp.nli: the decomposable attention model learns the demo's word-level rules, 2 replicas = 1,
evaluate (precision/recall/confusion by hand) and predict, GloVe initialisation, bad input, and
the real SNLI dev quality (slow)."""
import json
from pathlib import Path

import numpy as np
import pytest

from nlp import classify, nli, snli
from tests.cli_helpers import one_replica_vs_two, run


def test_attention_learns_demo_and_two_replicas_match_one(capsys, monkeypatch):
    single, mirrored = one_replica_vs_two(nli.main, ["--demo", "--dropout", 0], capsys)
    assert single["accuracy"] >= 0.9  # the rules are word-level; majority is ~0.36, a model blind to verbs ~0.67
    assert single["split"] == "test" and single["pairs"] == 492
    assert mirrored["loss"] == pytest.approx(single["loss"], rel=2e-2, abs=2e-3)
    assert mirrored["accuracy"] == pytest.approx(single["accuracy"], abs=2e-2)
    history = json.loads(Path("single/metrics.json").read_text())
    assert len(history) == nli.DEMO["epochs"] and "val_accuracy" in history[-1]

    reads = []  # evaluate reads the split it scores, once; the vocabulary comes from the run
    monkeypatch.setattr(snli, "read_tokenised", lambda d, split, read=snli.read_tokenised: reads.append(split)
                        or read(d, split))
    code, evaluated, _ = run(nli.main, ["evaluate", "--run-dir", "single"], capsys)
    assert code == 0 and evaluated["accuracy"] == single["accuracy"]
    assert reads == ["test"]
    matrix = np.array(evaluated["confusion_matrix"])
    assert matrix.sum() == 492 and np.trace(matrix) / 492 == pytest.approx(evaluated["accuracy"], abs=1e-4)
    for i, name in enumerate(snli.LABELS):  # precision and recall from the confusion matrix by hand
        assert evaluated["recall"][name] == pytest.approx(matrix[i, i] / matrix[i].sum(), abs=1e-4)
        assert evaluated["precision"][name] == pytest.approx(matrix[i, i] / max(matrix[:, i].sum(), 1), abs=1e-4)
    code, on_dev, _ = run(nli.main, ["evaluate", "--run-dir", "single", "--split", "dev"], capsys)
    assert code == 0 and on_dev["split"] == "dev" and on_dev["accuracy"] >= 0.85

    code, out, _ = run(nli.main, ["predict", "--run-dir", "single", "--premise", "a red dog is swimming near a river .",
                                  "--hypothesis", "the animal is swimming ."], capsys)
    assert code == 0 and out["label"] == "entailment"
    assert (out["words"], out["unknown_words"], out["known_fraction"]) == (14, 0, 1.0)  # all demo words
    assert sum(out["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    code, out, _ = run(nli.main, ["predict", "--run-dir", "single", "--premise", "a red dog is swimming near a river .",
                                  "--hypothesis", "the dog is sleeping ."], capsys)
    assert code == 0 and out["label"] == "contradiction"


def test_compare_features_by_hand():
    """`match` gives g [a, beta, a - beta, a * beta]; the book's `concat` [a, beta]; both models score."""
    a = np.array([[[1.0, 2.0], [3.0, -1.0]]], np.float32)
    beta = np.array([[[0.5, 4.0], [-2.0, 2.0]]], np.float32)
    match = nli.DecomposableAttention(10, 2, 4, compare="match")._pair_features(a, beta)
    np.testing.assert_allclose(match, [[[1, 2, 0.5, 4, 0.5, -2, 0.5, 8], [3, -1, -2, 2, 5, -3, -6, -2]]])
    concat = nli.DecomposableAttention(10, 2, 4, compare="concat")._pair_features(a, beta)
    np.testing.assert_allclose(concat, [[[1, 2, 0.5, 4], [3, -1, -2, 2]]])
    ids = {"premise": np.array([[2, 3, 1]], np.int32), "hypothesis": np.array([[4, 1, 1]], np.int32)}
    for compare, width in (("match", 4 * 8), ("concat", 2 * 8)):
        model = nli.build(nli.Config(embedding_dim=8, hidden=16, compare=compare), 10, 1)
        assert model(ids).shape == (1, 3)
        assert model.compare_mlp.layers[1].kernel.shape == (width, 16)
        assert nli.DecomposableAttention.from_config(model.get_config()).compare == compare
    assert nli.PRESETS["book"]["compare"] == "concat" and nli.Config().compare == "match"


def test_glove_initialised_and_frozen(tmp_path, capsys):
    words = sorted({w for s in snli.DEMO_SUBJECTS.items() for w in s} | set(snli.DEMO_VERBS))
    rng = np.random.default_rng(0)
    vectors = {w: rng.normal(size=8).round(4) for w in words}
    path = tmp_path / "vec.txt"
    path.write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in vectors.items()))
    code, result, err = run(nli.main, ["train", "--demo", "--epochs", 1, "--embeddings", path, "--embedding-dim", 8,
                                       "--run-dir", "glove"], capsys)
    assert code == 0, err
    assert result["embeddings_known"] == len(words)
    assert result["embeddings_oov"] == result["vocabulary"] - 2 - len(words)
    assert f"{len(words)} of {result['vocabulary'] - 2} vocabulary tokens found" in err
    vocab = classify.load_vocab("glove")
    model = nli.build(nli.Config(embedding_dim=8, hidden=64, embeddings=str(path)), len(vocab), vocab["<pad>"])
    from common.training import Run

    Run("glove", resume=True).restore({"model": model})
    table = model.embedding.embeddings.numpy()
    for w in ("dog", "sleeping"):  # frozen: still exactly the file's rows after training
        np.testing.assert_allclose(table[vocab[w]], vectors[w], atol=1e-6)
    code, _, err = run(nli.main, ["train", "--demo", "--embeddings", path], capsys)
    assert code == 2 and "have 8 dimensions but --embedding-dim is 32; pass --embedding-dim 8" in err
    assert len(err.strip().splitlines()) == 1


def test_nli_bad_input_is_one_line(tmp_path, capsys):
    (tmp_path / "s1.dev").write_text("a b\nc d\n")
    (tmp_path / "s2.dev").write_text("a\n")
    (tmp_path / "labels.dev").write_text("neutral\nneutral\n")
    code, _, err = run(nli.main, ["train", "--data-dir", tmp_path, "--holdout", 0.5], capsys)
    assert code == 1 and "s1.dev has 2 lines but s2.dev has 1" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "s2.dev").write_text("a\nb\n")
    (tmp_path / "labels.dev").write_text("neutral\nsure\n")
    code, _, err = run(nli.main, ["train", "--data-dir", tmp_path, "--holdout", 0.5], capsys)
    assert code == 1 and "labels.dev line 2: unknown label 'sure'" in err
    (tmp_path / "labels.dev").write_text("neutral\nentailment\n")
    code, _, err = run(nli.main, ["train", "--data-dir", tmp_path], capsys)
    assert code == 2 and "pass --holdout 0.1" in err
    code, _, err = run(nli.main, ["train", "--demo", "--model", "bert"], capsys)
    assert code == 2 and "--model bert needs exactly one of --bert-run DIR and --bert-preset DIR" in err


@pytest.mark.slow
def test_attention_real_snli_dev_with_glove(shared_data, capsys):
    code, result, err = run(nli.main, ["train", "--data-dir", shared_data / "snli", "--holdout", 0.1,
                                       "--embeddings", shared_data / "glove.6b.50d_top20k" / "vec.txt"], capsys)
    assert code == 0, err
    assert result["split"] == "holdout" and result["pairs"] == 984
    # majority ~0.36; the target is 0.60: the default (--compare match) measured 0.6128 on this
    # seed-0 split, the book's features (--compare concat) 0.596 (docs/experiments/nlp.md)
    assert result["accuracy"] >= 0.60


def test_bert_fine_tunes_from_a_local_preset(tmp_path, capsys):
    import keras

    from nlp import bert

    directory = snli.snli_directory(demo=True)
    train = snli.read_tokenised(directory, "train")
    vocabulary = bert.learn_vocabulary([" ".join(p) for p in train.premises[:500]]
                                       + [" ".join(h) for h in train.hypotheses[:500]], 200)
    keras.utils.set_random_seed(0)
    config = bert.Config(num_layers=1, hidden_dim=32, intermediate_dim=64, num_heads=2, max_len=32)
    bert.save_preset(bert.build_backbone(config, len(vocabulary)), bert.make_tokenizer(vocabulary), 32,
                     tmp_path / "tiny")
    code, result, err = run(nli.main, ["train", "--demo", "--model", "bert", "--bert-preset", tmp_path / "tiny",
                                       "--epochs", 3, "--lr", 0.002, "--run-dir", "bert"], capsys)
    assert code == 0, err
    assert result["seq_len"] == 32 and result["accuracy"] >= 0.6  # majority ~0.37
    code, evaluated, _ = run(nli.main, ["evaluate", "--run-dir", "bert"], capsys)
    assert code == 0 and evaluated["accuracy"] == pytest.approx(result["accuracy"], abs=1e-4)
    code, out, _ = run(nli.main, ["predict", "--run-dir", "bert", "--premise", "a dog is running .",
                                  "--hypothesis", "the dog is running for a prize ."], capsys)
    assert code == 0 and set(out["probabilities"]) == set(snli.LABELS)
    assert out["unknown_words"] == 0 and out["known_fraction"] == 1.0 and out["words"] >= 12
