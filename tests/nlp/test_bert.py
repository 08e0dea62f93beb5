"""nlp.bert: pair encoding by hand, a tiny random keras-hub preset saved and fine-tuned, preset errors;
pretraining on the demo (learns, 2 replicas = 1, resume, evaluate, encode), bad input; real WikiText-2 (slow)."""
import dataclasses
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from nlp import bert
from tests.cli_helpers import one_replica_vs_two, run, tree_digest

VOCAB = bert.RESERVED_TOKENS + ["the", "cat", "sat", "on", "mat", "dog", "##s", "a", ".", "yes", "no", "maybe"]
ID = {t: i for i, t in enumerate(VOCAB)}


def _tiny_preset(path, vocab=VOCAB, seq_len=12, max_len=16):
    config = bert.Config(num_layers=1, hidden_dim=16, intermediate_dim=32, num_heads=2, max_len=max_len)
    keras.utils.set_random_seed(0)
    backbone = bert.build_backbone(config, len(VOCAB))
    bert.save_preset(backbone, bert.make_tokenizer(vocab), seq_len, path)
    return backbone


def test_encode_pairs_packs_cls_a_sep_b_sep():
    tokenizer = bert.make_tokenizer(VOCAB)
    x = bert.encode_pairs(tokenizer, ["The cats sat", "a dog"], ["on the mat .", "zebra"], 10)
    cls, sep, unk = ID["[CLS]"], ID["[SEP]"], ID["[UNK]"]
    # 8 pieces for 7 places: round-robin truncation takes the last piece off the longer (second) side
    first = [cls, ID["the"], ID["cat"], ID["##s"], ID["sat"], sep, ID["on"], ID["the"], ID["mat"], sep]
    second = [cls, ID["a"], ID["dog"], sep, unk, sep, 0, 0, 0, 0]
    assert x["token_ids"].tolist() == [first, second]
    assert x["segment_ids"].tolist() == [[0] * 6 + [1] * 4, [0] * 4 + [1] * 2 + [0] * 4]
    assert x["padding_mask"].tolist() == [[1] * 10, [1] * 6 + [0] * 4]
    assert all(v.dtype == np.int32 for v in x.values())
    with pytest.raises(bert.DlsuiteError, match="2 premises but 1 hypotheses"):
        bert.encode_pairs(tokenizer, ["a", "b"], ["c"], 10)


def test_tiny_random_preset_loads_and_fine_tunes(tmp_path):
    backbone = _tiny_preset(tmp_path / "tiny")
    loaded, tokenizer, seq_len = bert.load_backbone(preset=tmp_path / "tiny")
    assert seq_len == 12 and tokenizer.vocabulary_size() == len(VOCAB)
    x = bert.encode_pairs(tokenizer, ["the cat sat"], ["on the mat"], seq_len)
    np.testing.assert_allclose(loaded(x)["pooled_output"], backbone(x)["pooled_output"], atol=1e-6)

    # a pair task only the hypothesis' word decides: the fine-tuned classifier must learn it
    rng = np.random.default_rng(0)
    words = ["the", "cat", "sat", "on", "mat", "dog", "a"]
    premises = [" ".join(rng.choice(words, 4)) for _ in range(192)]
    labels = rng.integers(3, size=192)
    hypotheses = [f"{' '.join(rng.choice(words, 2))} {['yes', 'no', 'maybe'][y]}" for y in labels]
    x = bert.encode_pairs(tokenizer, premises, hypotheses, seq_len)
    model = bert.pair_classifier(loaded, 3)
    model.compile(keras.optimizers.Adam(5e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, labels, batch_size=32, epochs=30, verbose=0)
    accuracy = float(np.mean(np.argmax(model.predict(x, verbose=0), -1) == labels))
    assert accuracy > 0.9  # chance is 1/3
    # the backbone was trained with the head
    assert not np.allclose(loaded.token_embedding.embeddings.numpy(), backbone.token_embedding.embeddings.numpy())


def test_preset_mismatches_are_one_line(tmp_path):
    _tiny_preset(tmp_path / "ok")
    with pytest.raises(bert.DlsuiteError, match="sequence length 40 is longer than the BERT's 16 positions") as e:
        bert.load_backbone(preset=tmp_path / "ok", seq_len=40)
    assert "\n" not in str(e.value)
    _tiny_preset(tmp_path / "other_vocab", vocab=VOCAB + ["extra"])
    with pytest.raises(bert.DlsuiteError, match="tokenizer has 18 word pieces but the BERT's token embedding has 17"):
        bert.load_backbone(preset=tmp_path / "other_vocab")
    with pytest.raises(bert.DlsuiteError, match="not a keras-hub preset directory"):
        bert.load_backbone(preset=tmp_path / "missing")
    (tmp_path / "gpt").mkdir()
    (tmp_path / "gpt" / "config.json").write_text(json.dumps({"class_name": "GPT2Backbone"}))
    with pytest.raises(bert.DlsuiteError, match="holds a GPT2Backbone model, not a BERT"):
        bert.load_backbone(preset=tmp_path / "gpt")
    with pytest.raises(bert.DlsuiteError, match="holds no pretrained BERT"):
        bert.load_backbone(run_dir=tmp_path)


def test_pretraining_pairs_are_the_books():
    tokenizer = bert.make_tokenizer(VOCAB)
    paragraphs = [["the cat", "the dog", "a mat"], ["yes", "no"], ["maybe", "the mat", "on", "a cat"]]
    corpus = bert.PretrainingCorpus(paragraphs, tokenizer)
    assert corpus.firsts.tolist() == [0, 1, 3, 5, 6, 7]  # every sentence with a successor in its paragraph
    first, second, is_next = corpus.nsp_pairs(np.random.default_rng(0))
    assert (second[is_next == 1] == first[is_next == 1] + 1).all()
    halves = [corpus.nsp_pairs(np.random.default_rng(s))[2].mean() for s in range(2000)]
    assert np.mean(halves) == pytest.approx(0.5, abs=0.02)
    config = bert.Config(max_len=12, mask_rate=0.25)
    inputs, targets = bert.pretraining_examples(corpus, tokenizer, config, np.random.default_rng(0), 7)
    again, _ = bert.pretraining_examples(corpus, tokenizer, config, np.random.default_rng(0), 7)
    assert all((inputs[k] == again[k]).all() for k in inputs)  # same seeds, same masks
    real = inputs["padding_mask"] == 1
    # masked positions are real word pieces (never [CLS]/[SEP]/[PAD]); the targets are the original ids
    rows = np.arange(len(first))[:, None]
    slots = targets["mask_weights"] > 0
    assert real[rows, inputs["mask_positions"]][slots].all()
    specials = {ID["[CLS]"], ID["[SEP]"], ID["[PAD]"]}
    assert not set(targets["mask_ids"][slots].tolist()) & specials
    assert inputs["token_ids"][:, 0].tolist() == [ID["[CLS]"]] * 6
    assert config.max_predictions == 3 and slots.sum(1).max() <= 3
    assert bert.most_frequent_token_accuracy({"mask_ids": np.array([[5, 5, 0], [6, 5, 9]]),
                                              "mask_weights": np.array([[1, 1, 0], [1, 1, 1.0]])}) == 0.6


def test_nsp_weight_scales_the_nsp_gradient_and_the_logged_loss():
    # One SGD step (lr 1, no decay) moves the weights by -(grad MLM + w x grad NSP): the steps with w = 0,
    # 1 and 3 from the same start satisfy step(3) - step(0) == 3 x (step(1) - step(0)).
    tokenizer = bert.make_tokenizer(VOCAB)
    corpus = bert.PretrainingCorpus([["the cat", "the dog", "a mat"], ["yes", "no", "maybe the mat"]], tokenizer)
    config = bert.Config(num_layers=1, hidden_dim=16, intermediate_dim=32, num_heads=2, max_len=12, dropout=0.0)
    batch = bert.pretraining_examples(corpus, tokenizer, config, np.random.default_rng(0), 3)
    moved, logs = {}, {}
    for w in (0.0, 1.0, 3.0):
        keras.utils.set_random_seed(0)
        model = bert.build(dataclasses.replace(config, nsp_weight=w), len(VOCAB))
        start = [v.numpy() for v in model.trainable_variables]
        model.compile(keras.optimizers.SGD(1.0))
        logs[w] = {k: float(v) for k, v in model.train_step(batch).items()}
        moved[w] = np.concatenate([(v.numpy() - s).ravel() for v, s in zip(model.trainable_variables, start)])
    np.testing.assert_allclose(moved[3.0] - moved[0.0], 3 * (moved[1.0] - moved[0.0]), atol=1e-5)
    assert np.abs(moved[1.0] - moved[0.0]).max() > 1e-4  # the NSP loss does move weights
    for w, row in logs.items():
        assert row["loss"] == pytest.approx(row["mlm_loss"] + w * row["nsp_loss"], rel=1e-6)


def test_pretrain_two_replicas_match_one_and_resume(capsys):
    single, mirrored = one_replica_vs_two(bert.main, ["--demo", "--epochs", 1], capsys, command="pretrain")
    for key in ("mlm_loss", "nsp_loss", "test_mlm_loss", "test_nsp_loss"):
        assert mirrored[key] == pytest.approx(single[key], rel=2e-3, abs=2e-3)
    # an argmax flips on float rounding: measured 0.0039 apart over ~6,000 masked positions
    assert mirrored["mlm_accuracy"] == pytest.approx(single["mlm_accuracy"], abs=1e-2)
    assert single["trained_on"] == "train"
    code, resumed, err = run(bert.main, ["pretrain", "--resume", "--run-dir", "mirrored", "--epochs", 2], capsys)
    assert code == 0, err
    assert [m["epoch"] for m in json.loads(Path("mirrored/metrics.json").read_text())] == [1, 2]
    assert resumed["vocabulary_size"] == single["vocabulary_size"]  # the run's vocab.txt, not a new one


def test_pretrain_demo_learns_and_the_run_is_usable(capsys):
    code, single, err = run(bert.main, ["pretrain", "--demo", "--run-dir", "single"], capsys)
    assert code == 0, err
    # the demo's sentences follow phrase patterns: masked words are learned within its 4 epochs (NSP is
    # not, there: it starts to learn after about 10 epochs on WikiText, see the slow test)
    assert single["test_mlm_accuracy"] > 2 * single["test_mlm_baseline_accuracy"]
    assert 0 <= single["test_nsp_accuracy"] <= 1 and single["test_pairs"] > 300

    code, evaluated, err = run(bert.main, ["evaluate", "--run-dir", "single"], capsys)
    assert code == 0, err
    assert evaluated["nsp_accuracy"] == pytest.approx(single["test_nsp_accuracy"], abs=1e-4)
    assert evaluated["mlm_baseline_accuracy"] == single["test_mlm_baseline_accuracy"]

    code, encoded, err = run(bert.main, ["encode", "--run-dir", "single", "the band played", "a loud song"], capsys)
    assert code == 0, err
    assert encoded["tokens"][0] == "[CLS]" and encoded["tokens"].count("[SEP]") == 2
    n = len(encoded["tokens"])
    assert encoded["sequence_output_shape"] == [1, n, 128] and len(encoded["cls"]) == 128
    for preset in (["--preset", "single/preset"], ["--preset=single/preset"]):
        code, from_preset, err = run(bert.main, ["encode", *preset, "the band played", "a loud song"], capsys)
        assert code == 0, err
        assert from_preset["cls"] == encoded["cls"]

    backbone, tokenizer, seq_len = bert.load_backbone(run_dir="single")
    assert seq_len == 32 and tokenizer.vocabulary_size() == single["vocabulary_size"]

    epochs = bert.DEMO["epochs"]
    # another sequence length or vocabulary than the checkpoint's: one line, before anything is written
    before = tree_digest("single")
    code, _, err = run(bert.main, ["pretrain", "--resume", "--run-dir", "single", "--epochs", epochs + 1,
                                   "--max-len", 48], capsys)
    assert code == 2 and "single was trained with --max-len 32; --resume keeps the run's settings" in err
    assert len(err.strip().splitlines()) == 1 and tree_digest("single") == before
    vocab = Path("single") / "vocab.txt"
    vocab.write_text(vocab.read_text() + "extra\n")
    code, _, err = run(bert.main, ["evaluate", "--run-dir", "single"], capsys)
    assert code == 1 and f"a vocabulary of {single['vocabulary_size']}" in err and len(err.strip().splitlines()) == 1
    # a lost vocab.txt is never silently relearned (that would mismatch the checkpoint's embedding rows)
    vocab.unlink()
    for argv in (["pretrain", "--resume", "--run-dir", "single", "--epochs", epochs + 1],
                 ["evaluate", "--run-dir", "single"]):
        code, _, err = run(bert.main, argv, capsys)
        assert code == 1 and f"{vocab} is missing" in err and len(err.strip().splitlines()) == 1, err
    assert [m["epoch"] for m in json.loads(Path("single/metrics.json").read_text())] == list(range(1, epochs + 1))


def test_pretrain_writes_vocab_txt_and_preset_on_the_chief_only(monkeypatch, capsys):
    import common.cli

    monkeypatch.setattr(common.cli, "is_chief", lambda strategy: False)  # this process: a worker, not the chief
    code, result, err = run(bert.main, ["pretrain", "--demo", "--epochs", 1, "--num-layers", 1, "--hidden-dim", 32,
                                        "--intermediate-dim", 32, "--vocab-size", 100, "--max-len", 16,
                                        "--run-dir", "worker"], capsys)
    assert code == 0, err
    assert not Path("worker/vocab.txt").exists() and not Path("worker/config.json").exists()  # was written
    assert not Path("worker", bert.PRESET_DIR).exists()  # the preset too


def test_pretrain_bad_input_is_one_line(tmp_path, capsys):
    (tmp_path / "wiki.valid.tokens").write_text(" = Heading = \n")
    (tmp_path / "wiki.test.tokens").write_text(" a . b . \n")
    code, _, err = run(bert.main, ["pretrain", "--data-dir", tmp_path], capsys)
    assert code == 1 and "holds no paragraph of two or more sentences" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(bert.main, ["pretrain", "--demo", "--num-heads", 3], capsys)
    assert code == 2 and "--num-heads 3 must divide --hidden-dim 128" in err
    for preset in (["--preset", tmp_path], [f"--preset={tmp_path}"]):  # no run needed, either spelling
        code, _, err = run(bert.main, ["encode", *preset, "text"], capsys)
        assert code == 1 and "not a keras-hub preset directory" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as exit_info:  # argparse's usage error, through the spine's parser
        bert.main(["encode", "text", "--preset"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "argument --preset: expected one argument" in err
    assert len(err.strip().splitlines()) == 1
    (tmp_path / "config.json").write_text("{}")
    code, _, err = run(bert.main, ["encode", f"--run-dir={tmp_path}", "--preset", tmp_path, "text"], capsys)
    assert code == 2 and "--preset DIR or from a run (--run-dir), not both" in err, err


@pytest.mark.slow
def test_real_wikitext_quality(shared_data, capsys):
    """Trained on the real valid split (default recipe, 72 epochs: 11.5 minutes on a fast 2-core machine, about
    twice that on a slow one): MLM accuracy on test 0.249, 0.239 and 0.251 for seeds 0, 1 and 2 against the most-
    frequent-token baseline's 0.053 (the issue asks for 2x; 4x is checked), NSP 0.704, 0.693 and 0.705 on test
    (the issue's 0.70; see docs/nlp.md), 0.86-0.87 on the last epoch's training pairs."""
    code, result, err = run(bert.main, ["pretrain", "--data-dir", shared_data / "wikitext-2", "--run-dir", "wt2"],
                            capsys)
    assert code == 0, err
    assert result["trained_on"] == "valid"
    assert result["test_nsp_accuracy"] >= 0.68 and result["nsp_accuracy"] >= 0.80
    assert result["test_mlm_accuracy"] >= 4 * result["test_mlm_baseline_accuracy"]
