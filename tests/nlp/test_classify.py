"""nlp.classify: the config fields NLI and sentiment share (their help texts as before), the run's
vocabulary file, the OOV note, the held-back parts, batch-wise probabilities, and fit + restore on a tiny token task."""
import dataclasses
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from common.errors import DlsuiteError
from common.training import Run
from nlp import classify, nli, sentiment
from nlp.text import Vocab


def _field(config_cls, name):
    return next(f for f in dataclasses.fields(config_cls) if f.name == name)


@pytest.mark.parametrize("config_cls, defaults, helps", [
    (nli.Config, {"max_len": 50, "min_freq": 1, "embeddings": "", "freeze_embeddings": True, "val_ratio": 0.05},
     {"max_len": "tokens kept per sentence (longer ones are cut)",
      "freeze_embeddings": "keep the embedding table fixed (only with --embeddings)",
      "val_ratio": "share of the training pairs held out for the per-epoch validation accuracy"}),
    (sentiment.Config, {"max_len": 500, "min_freq": 5, "embeddings": "", "freeze_embeddings": False,
                        "val_ratio": 0.1},
     {"max_len": "tokens kept per review (longer ones are cut)",
      "freeze_embeddings": "keep the (trained) embedding table fixed (only with --embeddings)",
      "val_ratio": "share of the training reviews held out for the per-epoch validation accuracy"}),
])
def test_shared_fields_keep_each_models_defaults_and_help(config_cls, defaults, helps):
    config = config_cls()
    assert {name: getattr(config, name) for name in defaults} == defaults
    for name, text in helps.items():
        assert _field(config_cls, name).metadata["help"] == text
    assert _field(config_cls, "min_freq").metadata["help"] == "vocabulary: drop training tokens seen fewer times"
    assert _field(config_cls, "embeddings").metadata["metavar"] == "PATH"
    assert _field(config_cls, "val_ratio").metadata["bounds"][4] == "[0, 1)"
    names = [f.name for f in dataclasses.fields(config_cls)]  # --help lists the flags in this order
    assert names.index("dropout") < names.index("max_len") < names.index("min_freq") < names.index("embeddings")


def test_vocabulary_file_round_trip_and_missing(tmp_path):
    vocab = Vocab([["b", "a", "b", "c"]], reserved_tokens=[classify.PAD])
    classify.save_vocab(Run(tmp_path / "run"), vocab)
    assert (tmp_path / "run" / "vocab.txt").read_text() == "".join(f"{t}\n" for t in vocab.idx_to_token)
    assert classify.load_vocab(tmp_path / "run").idx_to_token == vocab.idx_to_token
    with pytest.raises(DlsuiteError, match="holds no vocab.txt; train into it first"):
        classify.load_vocab(tmp_path)
    # the token-list pair nlp.bert uses: the same file; a non-chief worker writes nothing
    classify.save_tokens(Run(tmp_path / "worker", chief=False), ["[PAD]", "x"])
    assert not (tmp_path / "worker").exists()
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "vocab.txt").write_text("\n".join(["[PAD]", "##s", "a"]) + "\n")  # as bert wrote it before
    assert classify.load_tokens(tmp_path / "bert") == ["[PAD]", "##s", "a"]
    with pytest.raises(DlsuiteError, match=r"^.*worker.vocab\.txt is gone$"):
        classify.load_tokens(tmp_path / "worker", missing="{path} is gone")


def test_holdout_is_seeded_disjoint_and_complete():
    kept, held = classify.holdout_indices(1000, 0.1, seed=3)
    again_kept, again_held = classify.holdout_indices(1000, 0.1, seed=3)
    assert len(held) == 100 and len(kept) == 900
    assert np.array_equal(held, again_held) and np.array_equal(kept, again_kept)
    assert not set(kept.tolist()) & set(held.tolist())
    assert sorted(kept.tolist() + held.tolist()) == list(range(1000))
    assert not np.array_equal(held, classify.holdout_indices(1000, 0.1, seed=4)[1])


def test_initial_embeddings_notes_oov_in_one_line(tmp_path, capsys):
    path = tmp_path / "vec.txt"
    path.write_text("the 0.1 0.2 0.3\ncat 1 2 3\n")
    vocab = Vocab([["the", "cat", "on", "on", "zzz", "the"]], reserved_tokens=[classify.PAD])
    config = SimpleNamespace(embeddings=str(path), embedding_dim=3, seed=0)
    initial = classify.initial_embeddings(config, vocab)
    # by hand: 4 vocabulary tokens besides <unk>/<pad>; the file lacks on (2x) and zzz (1x) of 6 tokens
    assert capsys.readouterr().err == ("embeddings: 2 of 4 vocabulary tokens found, 2 OOV (50.0% of training "
                                       "tokens), e.g. on zzz\n")
    assert classify.embeddings_report(initial) == {"embeddings_known": 2, "embeddings_oov": 2,
                                                   "embeddings_oov_share": 0.5}
    assert classify.initial_embeddings(SimpleNamespace(embeddings=""), vocab) is None
    assert capsys.readouterr().err == "" and classify.embeddings_report(None) == {}


def test_class_probabilities_batch_by_batch_equal_one_softmax():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    x = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    expected = keras.ops.convert_to_numpy(keras.ops.softmax(model(x), axis=-1))
    np.testing.assert_allclose(classify.class_probabilities(model, x, batch_size=3), expected, atol=1e-6)
    inputs = {"a": keras.Input((4,), name="a")}
    pair = classify.class_probabilities(keras.Model(inputs, keras.layers.Dense(3)(inputs["a"])), {"a": x}, batch_size=4)
    assert pair.shape == (10, 3) and np.allclose(pair.sum(axis=1), 1.0)


def _build(config, vocab_size, pad_id):
    model = keras.Sequential([keras.Input((None,), dtype="int32"), keras.layers.Embedding(vocab_size, 8),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(2)])
    return classify.compile_classifier(model, config.lr)


def test_fit_reports_the_last_epoch_and_restore_reads_the_run(tmp_path):
    vocab = Vocab([["good", "bad", "movie", "plot"]], reserved_tokens=[classify.PAD])
    rng = np.random.default_rng(0)
    labels = rng.integers(2, size=128).astype(np.int32)
    ids = rng.choice([vocab["movie"], vocab["plot"]], size=(128, 4)).astype(np.int32)
    ids[:, 1] = np.where(labels == 1, vocab["good"], vocab["bad"])  # the second token decides the label
    config = SimpleNamespace(epochs=8, batch_size=16, seed=0, lr=0.05)
    run = Run(tmp_path / "run")
    model = _build(config, len(vocab), vocab[classify.PAD])
    classify.save_vocab(run, vocab)
    result = classify.fit(model, run, config, ids[:96], labels[:96], ids[96:], labels[96:])
    assert set(result) == {"loss", "train_accuracy", "val_accuracy"}
    assert result["val_accuracy"] == 1.0 and result["train_accuracy"] == 1.0  # chance is 1/2
    ctx = SimpleNamespace(run_dir=tmp_path / "run", config=config,
                          restore=lambda m: Run(tmp_path / "run", resume=True).restore({"model": m}))
    restored, restored_vocab = classify.restore(ctx, _build)
    assert restored_vocab.idx_to_token == vocab.idx_to_token
    np.testing.assert_allclose(restored.predict(ids, verbose=0), model.predict(ids, verbose=0), atol=1e-5)
    unvalidated = classify.fit(_build(config, len(vocab), 1), Run(tmp_path / "other"), config, ids, labels,
                               ids[:0], labels[:0])
    assert set(unvalidated) == {"loss", "train_accuracy"}
