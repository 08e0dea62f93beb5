"""nlp.word2vec: demo clusters recovered, 1 vs 2 replicas, resume, CBOW, subwords for unknown
words, the book's preset, bad input; real PTB quality (slow)."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from common.errors import DatasetError
from nlp import embeddings as E
from nlp import word2vec
from tests.cli_helpers import one_replica_vs_two, run

CHANCE = 9 / 59  # a demo word's 9 nearest among 59 others, 9 of them in its cluster


def _vectors(run_dir):
    return E.load_vectors(Path(run_dir) / "vectors.txt")


def test_skip_gram_recovers_demo_clusters_and_two_replicas_match_one(capsys):
    single, mirrored = one_replica_vs_two(word2vec.main, ["--demo"], capsys)
    assert single["cluster_precision"] >= 0.9 > CHANCE + 0.5
    assert mirrored["loss"] == pytest.approx(single["loss"], rel=1e-4)
    a, b = _vectors("single"), _vectors("mirrored")
    assert a.words == b.words and np.allclose(a.matrix, b.matrix, atol=1e-4)
    code, out, _ = run(word2vec.main, ["similar", "chip", "-k", 5, "--run-dir", "single"], capsys)
    assert code == 0 and set(out["neighbours"]) <= set(word2vec.ndata.DEMO_TOPICS["computing"])
    code, out, _ = run(word2vec.main, ["evaluate", "--run-dir", "single"], capsys)
    assert code == 0 and out["cluster_precision"] == single["cluster_precision"]


def test_centre_grouped_skip_gram_loss_is_the_sum_of_its_pair_losses():
    """A batch of centres with their context words scores exactly what the same pairs score one
    by one (the shared noise words are the batch's, counted once per pair); the logged loss is a
    mean per pair."""
    import keras
    import tensorflow as tf

    model = word2vec.Word2Vec(12, 4, "skipgram", negatives=5, shared_noise=3)
    rng = np.random.default_rng(0)
    model.word_in.assign(rng.normal(size=(12, 4)).astype(np.float32))
    model.word_out.assign(rng.normal(size=(12, 4)).astype(np.float32))
    model.compile(keras.optimizers.SGD(0.0))
    centres = np.array([3, 7], np.int32)
    contexts = np.array([[1, 5, 9, 0], [2, 4, 0, 0]], np.int32)
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], np.float32)
    grouped = model.example_losses({"inputs": centres, "contexts": contexts, "mask": mask}).numpy()
    pairs = {"inputs": np.array([3, 3, 3, 7, 7], np.int32), "targets": np.array([[1], [5], [9], [2], [4]], np.int32)}
    by_pair = model.example_losses(pairs).numpy()
    np.testing.assert_allclose(grouped, [by_pair[:3].sum(), by_pair[3:].sum()], rtol=1e-5)
    # by hand for the first pair: -log s(u_1 . h_3) - (5 / 3) sum over the 3 noise words log s(-u_k . h_3)
    h, noise = model.word_in.numpy()[3], model.word_out.numpy()[model.shared_noise_words().numpy()]
    softplus = lambda x: np.log1p(np.exp(x))  # noqa: E731
    expected = softplus(-model.word_out.numpy()[1] @ h) + 5 / 3 * softplus(noise @ h).sum()
    assert by_pair[0] == pytest.approx(expected, rel=1e-5)
    assert float(model.example_count({"contexts": contexts, "mask": mask})) == 5
    assert model.example_count(pairs) is None and tf.is_tensor(model.example_count({"contexts": contexts,
                                                                                        "mask": mask}))


def test_counter_uniform_is_lowbias32_and_the_same_under_xla():
    import tensorflow as tf

    def mix(x):  # lowbias32 in Python integers
        x ^= x >> 16
        x = (x * 0x7FEB352D) & 0xFFFFFFFF
        x ^= x >> 15
        x = (x * 0x846CA68B) & 0xFFFFFFFF
        return x ^ (x >> 16)

    base = mix((7 + mix(3)) & 0xFFFFFFFF)
    expected = [(mix((base + i) & 0xFFFFFFFF) >> 8) / 2 ** 24 for i in range(5)]
    np.testing.assert_array_equal(word2vec.counter_uniform(7, 3, 5).numpy(), np.float32(expected))
    compiled = tf.function(word2vec.counter_uniform, jit_compile=True)
    np.testing.assert_array_equal(compiled(tf.constant(7), tf.constant(3, tf.int64), 64).numpy(),
                                  word2vec.counter_uniform(7, 3, 64).numpy())
    many = word2vec.counter_uniform(1, 0, 100_000).numpy()
    assert 0 <= many.min() and many.max() < 1 and abs(many.mean() - 0.5) < 0.005 and abs(many.var() - 1 / 12) < 0.002
    assert not np.array_equal(word2vec.counter_uniform(1, 1, 64).numpy(), many[:64])


def test_resume_repeats_the_uninterrupted_run(capsys):
    code, whole, err = run(word2vec.main, ["train", "--demo", "--keep-checkpoints", 2, "--run-dir", "whole"], capsys)
    assert code == 0, err
    # An interruption after epoch 1: the same run without its epoch-2 checkpoint.
    shutil.copytree("whole", "parts")
    shutil.rmtree("parts/checkpoints/epoch-0002")
    code, resumed, err = run(word2vec.main, ["train", "--demo", "--resume", "--run-dir", "parts"], capsys)
    assert code == 0 and "resumed from epoch 1" in err, err
    assert resumed["loss"] == pytest.approx(whole["loss"], rel=1e-5)
    assert np.allclose(_vectors("whole").matrix, _vectors("parts").matrix, atol=1e-5)


def test_cbow_and_book_preset_learn_the_clusters(capsys):
    code, cbow, err = run(word2vec.main, ["train", "--demo", "--model", "cbow", "--run-dir", "cbow"], capsys)
    assert code == 0 and cbow["cluster_precision"] >= 0.8, err
    code, book, err = run(word2vec.main, ["train", "--demo", "--preset", "book", "--epochs", 2, "--min-freq", 1,
                                          "--run-dir", "book"], capsys)
    saved = json.loads(Path("book/config.json").read_text())
    assert code == 0 and saved["optimizer"] == "adam" and saved["shared_noise"] == 0, err
    assert book["cluster_precision"] >= 0.8


def test_subwords_give_unknown_words_vectors(tmp_path, capsys):
    code, out, err = run(word2vec.main, ["train", "--demo", "--subwords", "3-5", "--buckets", 5000,
                                         "--run-dir", "sub"], capsys)
    assert code == 0 and out["cluster_precision"] >= 0.8, err
    vectors = E.load_run("sub")
    assert "microprocessors" not in vectors.index and vectors.vector("microprocessors") is not None
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("chip\tintel\t9\nchip\tmicroprocessors\t8\nchip\tstorms\t1\nrain\tstorms\t8\n")
    code, with_grams, _ = run(word2vec.main, ["evaluate", "--run-dir", "sub", "--similarity", pairs], capsys)
    plain = E.evaluate(_vectors("sub"), pairs)
    assert code == 0 and plain["similarity_coverage"] == 0.25 and with_grams["similarity_coverage"] == 1.0
    code, out, _ = run(word2vec.main, ["similar", "microprocessors", "-k", 3, "--run-dir", "sub"], capsys)
    assert code == 0 and "microprocessor" in out["neighbours"]
    # a run written before runs kept their n-gram table: nlp.embeddings says which command reads it, and
    # word2vec's own commands read it from the checkpoint, whose n-gram rows are the table's
    (Path("sub") / "subwords.npz").unlink()
    with pytest.raises(DatasetError, match="holds no subwords.npz .*python -m nlp.word2vec similar"):
        E.load_run("sub")
    restored = word2vec.load_run("sub")
    np.testing.assert_array_equal(restored.vector("microprocessors"), vectors.vector("microprocessors"))
    code, old, err = run(word2vec.main, ["similar", "microprocessors", "-k", 3, "--run-dir", "sub"], capsys)
    assert code == 0 and old["neighbours"] == out["neighbours"], err


def test_bad_input_is_one_line_and_leaves_nothing(tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("\n\n")
    code, _, err = run(word2vec.main, ["train", "--corpus", tmp_path / "empty.txt", "--run-dir", "r"], capsys)
    assert code == 1 and "is empty" in err and len(err.strip().splitlines()) == 1
    assert not Path("r").exists()
    code, _, err = run(word2vec.main, ["train", "--demo", "--subwords", "5-3", "--run-dir", "r"], capsys)
    assert code == 2 and "--subwords must look like 3-6" in err
    code, _, err = run(word2vec.main, ["train", "--demo", "--corpus", tmp_path / "empty.txt"], capsys)
    assert code == 2 and "--corpus names the training file itself" in err
    code, _, err = run(word2vec.main, ["train", "--demo", "--lr", 1e6, "--epochs", 1, "--run-dir", "nan"], capsys)
    assert code == 1 and "training diverged in epoch 1" in err and not Path("nan/checkpoints/epoch-0001").exists()


@pytest.mark.slow
def test_default_run_on_real_ptb(shared_data, capsys):
    code, result, err = run(word2vec.main, ["train", "--data-dir", shared_data / "ptb", "--run-dir", "ptb"], capsys)
    assert code == 0, err
    code, out, _ = run(word2vec.main, ["similar", "chip", "-k", 5, "--run-dir", "ptb"], capsys)
    assert {"intel", "microprocessor"} & set(out["neighbours"])
    if E.reference_files()[0] is not None:
        # Measured 0.401-0.408 over seeds 0..2 (docs/experiments/nlp.md), gensim's 20 epochs 0.381-0.394 (the
        # issue's bar). A broken model scores below 0.15 (gensim's 5 epochs).
        assert result["spearman"] >= 0.38
