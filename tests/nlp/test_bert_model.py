"""nlp.bert_model: a tiny random keras-hub preset saved, loaded and fine-tuned, preset errors, and the NSP
weight in one pretraining step."""
import dataclasses
import json

import keras
import numpy as np
import pytest

from common.errors import DlsuiteError
from nlp import bert, bert_data, bert_model
from tests.nlp.test_bert_data import VOCAB


def _tiny_preset(path, vocab=VOCAB, seq_len=12, max_len=16):
    config = bert.Config(num_layers=1, hidden_dim=16, intermediate_dim=32, num_heads=2, max_len=max_len)
    keras.utils.set_random_seed(0)
    backbone = bert_model.build_backbone(config, len(VOCAB))
    bert_model.save_preset(backbone, bert_data.make_tokenizer(vocab), seq_len, path)
    return backbone


def test_tiny_random_preset_loads_and_fine_tunes(tmp_path):
    backbone = _tiny_preset(tmp_path / "tiny")
    loaded, tokenizer, seq_len = bert_model.load_backbone(preset=tmp_path / "tiny")
    assert seq_len == 12 and tokenizer.vocabulary_size() == len(VOCAB)
    x = bert_data.encode_pairs(tokenizer, ["the cat sat"], ["on the mat"], seq_len)
    np.testing.assert_allclose(loaded(x)["pooled_output"], backbone(x)["pooled_output"], atol=1e-6)

    # a pair task only the hypothesis' word decides: the fine-tuned classifier must learn it
    rng = np.random.default_rng(0)
    words = ["the", "cat", "sat", "on", "mat", "dog", "a"]
    premises = [" ".join(rng.choice(words, 4)) for _ in range(192)]
    labels = rng.integers(3, size=192)
    hypotheses = [f"{' '.join(rng.choice(words, 2))} {['yes', 'no', 'maybe'][y]}" for y in labels]
    x = bert_data.encode_pairs(tokenizer, premises, hypotheses, seq_len)
    model = bert_model.pair_classifier(loaded, 3)
    model.compile(keras.optimizers.Adam(5e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, labels, batch_size=32, epochs=30, verbose=0)
    accuracy = float(np.mean(np.argmax(model.predict(x, verbose=0), -1) == labels))
    assert accuracy > 0.9  # chance is 1/3
    # the backbone was trained with the head
    assert not np.allclose(loaded.token_embedding.embeddings.numpy(), backbone.token_embedding.embeddings.numpy())


def test_preset_mismatches_are_one_line(tmp_path):
    _tiny_preset(tmp_path / "ok")
    with pytest.raises(DlsuiteError, match="sequence length 40 is longer than the BERT's 16 positions") as e:
        bert_model.load_backbone(preset=tmp_path / "ok", seq_len=40)
    assert "\n" not in str(e.value)
    _tiny_preset(tmp_path / "other_vocab", vocab=VOCAB + ["extra"])
    with pytest.raises(DlsuiteError, match="tokenizer has 18 word pieces but the BERT's token embedding has 17"):
        bert_model.load_backbone(preset=tmp_path / "other_vocab")
    with pytest.raises(DlsuiteError, match="not a keras-hub preset directory"):
        bert_model.load_backbone(preset=tmp_path / "missing")
    (tmp_path / "gpt").mkdir()
    (tmp_path / "gpt" / "config.json").write_text(json.dumps({"class_name": "GPT2Backbone"}))
    with pytest.raises(DlsuiteError, match="holds a GPT2Backbone model, not a BERT"):
        bert_model.load_backbone(preset=tmp_path / "gpt")
    with pytest.raises(DlsuiteError, match="holds no pretrained BERT"):
        bert_model.load_backbone(run_dir=tmp_path)


def test_nsp_weight_scales_the_nsp_gradient_and_the_logged_loss():
    # One SGD step (lr 1, no decay) moves the weights by -(grad MLM + w x grad NSP): the steps with w = 0,
    # 1 and 3 from the same start satisfy step(3) - step(0) == 3 x (step(1) - step(0)).
    tokenizer = bert_data.make_tokenizer(VOCAB)
    corpus = bert_data.PretrainingCorpus([["the cat", "the dog", "a mat"], ["yes", "no", "maybe the mat"]], tokenizer)
    config = bert.Config(num_layers=1, hidden_dim=16, intermediate_dim=32, num_heads=2, max_len=12, dropout=0.0)
    batch = bert_data.pretraining_examples(corpus, tokenizer, config, np.random.default_rng(0), 3)
    moved, logs = {}, {}
    for w in (0.0, 1.0, 3.0):
        keras.utils.set_random_seed(0)
        model = bert_model.build(dataclasses.replace(config, nsp_weight=w), len(VOCAB))
        start = [v.numpy() for v in model.trainable_variables]
        model.compile(keras.optimizers.SGD(1.0))
        logs[w] = {k: float(v) for k, v in model.train_step(batch).items()}
        moved[w] = np.concatenate([(v.numpy() - s).ravel() for v, s in zip(model.trainable_variables, start)])
    np.testing.assert_allclose(moved[3.0] - moved[0.0], 3 * (moved[1.0] - moved[0.0]), atol=1e-5)
    assert np.abs(moved[1.0] - moved[0.0]).max() > 1e-4  # the NSP loss does move weights
    for w, row in logs.items():
        assert row["loss"] == pytest.approx(row["mlm_loss"] + w * row["nsp_loss"], rel=1e-6)
