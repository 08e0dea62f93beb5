"""nlp.bert: pair encoding by hand, a tiny random keras-hub preset saved and fine-tuned, preset errors;
pretraining on the demo (learns, 2 replicas = 1, resume, evaluate, encode), bad input; real WikiText-2 (slow)."""
import json

import keras
import numpy as np
import pytest

from nlp import bert

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
