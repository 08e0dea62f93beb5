"""nlp.sentiment / nlp.nli `export`: the in-graph tokenizers equal the Python ones string for string; the
SavedModel, run in a fresh process that imports only TensorFlow, gives `predict`'s labels and probabilities
on the demo data (1e-4), counts unseen words as predict does, answers an empty string with the all-padding
input's output, and `saved_model_cli` lists the signature; bad flags are one line and write nothing."""
from pathlib import Path

import numpy as np
import pytest

from nlp import classify, imdb, nli, sentiment, serving, snli
from nlp.text import encode_padded
from tests.export_helpers import call_exported, check_refusals, saved_model_cli_show

TRICKY = ["Hello, WORLD!! <br />It's 10/10?!", "", "   ", "Ünïcode café naïve Straße", "a<BR />b<br/>c",
          "tab\tsep\nnew\x0bline\x1cfs", "A\u00a0man\u2003is\u3000here", "ÉCOLE", "?!?", "don't-stop 3.14"]


def test_in_graph_tokenizers_equal_python():
    import tensorflow as tf

    reviews = serving.review_tokens(tf.constant(TRICKY)).to_list()
    assert [[t.decode() for t in row] for row in reviews] == [imdb.tokenize_review(s) for s in TRICKY]
    words = serving.whitespace_tokens(tf.constant(TRICKY)).to_list()
    assert [[t.decode() for t in row] for row in words] == [s.lower().split() for s in TRICKY]
    table = serving.VocabTable(["<unk>", "<pad>", "good", "film"], pad_id=1, max_len=3)
    ids, read, unknown = table.encode(tf.ragged.constant([["good", "zz", "film", "good"], [], ["<pad>"]]))
    assert ids.numpy().tolist() == [[2, 0, 3], [1, 1, 1], [1, 1, 1]]  # cut to 3, unknown -> 0, padded with 1
    assert read.numpy().tolist() == [3, 0, 1] and unknown.numpy().tolist() == [1, 0, 1]


def _demo_reviews(n):
    directory = imdb.imdb_directory(demo=True)
    files = [p for label in ("pos", "neg") for p in sorted((directory / "test" / label).glob("*.txt"))[:n]]
    return [p.read_text(encoding="utf-8") for p in files]


def test_sentiment_export_equals_predict_in_a_fresh_process(tmp_path, capsys):
    sentiment.train(sentiment.Config(epochs=2, lr=0.01), demo=True, run_dir="run")
    result = sentiment.export("run", out="served")
    assert result["signature"]["inputs"] == {"text": ["string", [None]]}
    assert result["signature"]["outputs"]["probabilities"] == ["float32", [None, 2]]
    assert (Path("served") / "labels.txt").read_text() == "negative\npositive\n"
    texts = _demo_reviews(6) + ["a great movie zzqx, i loved it", "zzqx qqwv", "", "!!!"]
    got = call_exported("served", {"text": texts})
    model, vocab = sentiment.load("run"), classify.load_vocab("run")
    padded = encode_padded(vocab, [imdb.tokenize_review(t) for t in texts], 128, vocab[classify.PAD])
    expected = classify.class_probabilities(model, padded)
    np.testing.assert_allclose(got["probabilities"], expected, atol=1e-5)
    assert np.mean(expected[:12].argmax(axis=1) == [1] * 6 + [0] * 6) >= 0.75  # trained: not two near-uniform outputs
    assert [s.decode() for s in got["label"]] == [imdb.LABELS[i] for i in expected.argmax(axis=1)]
    for i in (0, 12, 13):  # predict itself, on a demo review, one with an unseen word, one with no known word
        p = sentiment.predict("run", text=texts[i])
        assert got["label"][i].decode() == p["label"]
        assert got["probabilities"][i, 1] == pytest.approx(p["positive_probability"], abs=1e-4)
        assert (got["words"][i], got["unknown_words"][i]) == (p["words"], p["unknown_words"])
    assert (got["words"][13], got["unknown_words"][13]) == (2, 2)
    # empty input: predict refuses it ("no words"); the export answers for an all-padding row, words = 0
    assert got["words"][14] == 0 and (got["words"][15], got["unknown_words"][15]) == (3, 3)  # no "!" in the demo
    np.testing.assert_allclose(got["probabilities"][14], expected[14], atol=1e-5)
    shown = saved_model_cli_show("served")
    assert "signature_def['serving_default']" in shown
    assert "inputs['text'] tensor_info" in shown and "outputs['label'] tensor_info" in shown
    check_refusals(sentiment.main, capsys)


@pytest.mark.slow  # over the fast suite's time budget (minutes of 2-core CPU for the new tests)
def test_nli_export_equals_predict_in_a_fresh_process():
    nli.train(nli.Config(epochs=1, batch_size=256), demo=True, run_dir="run")
    nli.export("run", out="served")
    premises = ["A man is Sleeping .", "two dogs  run in\tthe park .", "", "zzqx qqwv"]
    hypotheses = ["nobody is sleeping zzqx .", "an animal runs .", "a woman sings .", "zzqx"]
    got = call_exported("served", {"premise": premises, "hypothesis": hypotheses})
    model, vocab = nli.load("run"), classify.load_vocab("run")
    pairs = snli.Pairs([p.lower().split() for p in premises], [h.lower().split() for h in hypotheses],
                       np.zeros(4, np.int32))
    expected = classify.class_probabilities(model, nli.encode(vocab, pairs, 50))
    np.testing.assert_allclose(got["probabilities"], expected, atol=1e-5)
    assert [s.decode() for s in got["label"]] == [snli.LABELS[i] for i in expected.argmax(axis=1)]
    for i in (0, 1):
        p = nli.predict("run", premise=premises[i], hypothesis=hypotheses[i])
        assert got["label"][i].decode() == p["label"]
        np.testing.assert_allclose(got["probabilities"][i], [p["probabilities"][n] for n in snli.LABELS], atol=1e-4)
        assert (got["words"][i], got["unknown_words"][i]) == (p["words"], p["unknown_words"])
    assert got["words"].tolist()[2:] == [4, 3] and got["unknown_words"].tolist()[3] == 3  # empty premise: padding


@pytest.mark.slow
def test_bert_export_gives_encode_outputs_in_a_fresh_process():
    from nlp import bert

    tiny = bert.Config(epochs=1, num_layers=1, hidden_dim=32, intermediate_dim=32, vocab_size=100, max_len=16)
    bert.pretrain(tiny, demo=True, run_dir="run")
    result = bert.export("run", out="served")
    assert result["signature"]["inputs"] == {"text": ["string", [None]]}
    assert result["signature"]["outputs"]["sequence_output"] == ["float32", [None, 16, 32]]
    texts = ["the game was Released in 2011 .", "zzqx", "", "a " * 40]  # unknown word, empty, cut to 16
    calls = [{"text": texts}, {"text": texts[:1], "text_pair": ["it was zzqx ."]}]
    single = call_exported("served", calls[0], imports=("tensorflow_text",))
    pair = call_exported("served", calls[1], signature="pair", imports=("tensorflow_text",))
    vocabulary = Path("served", "vocab.txt").read_text(encoding="utf-8").splitlines()
    for row, text, out in [(0, [texts[0]], single), (1, [texts[1]], single), (2, [texts[2]], single),
                           (3, [texts[3]], single), (0, [texts[0], "it was zzqx ."], pair)]:
        encoded = bert.encode("run", texts=text)
        real = out["padding_mask"][row].astype(bool)
        assert real.sum() == len(encoded["tokens"]) and real[:real.sum()].all()  # real tokens first, then padding
        assert out["token_ids"][row][real].tolist() == [vocabulary.index(t) for t in encoded["tokens"]]
        np.testing.assert_allclose(out["cls"][row], encoded["cls"], atol=1e-4)
        np.testing.assert_array_equal(out["cls"][row], out["sequence_output"][row, 0])
    assert single["padding_mask"][2].sum() == 2 and single["padding_mask"][3].sum() == 16  # [CLS] [SEP]; cut
    assert vocabulary.index("[UNK]") in pair["token_ids"][0].tolist()  # zzqx, which the vocabulary lacks


@pytest.mark.slow
def test_nli_bert_export_equals_predict_in_a_fresh_process():
    from nlp import bert

    tiny = bert.Config(epochs=1, num_layers=1, hidden_dim=32, intermediate_dim=32, vocab_size=100, max_len=16)
    bert.pretrain(tiny, demo=True, run_dir="bert")
    nli.train(nli.Config(epochs=1, model="bert", bert_run="bert", lr=1e-3), demo=True, run_dir="run")
    nli.export("run", out="served")
    premises, hypotheses = ["A man is Sleeping zzqx .", "two dogs  run ."], ["nobody is sleeping .", "an animal runs"]
    got = call_exported("served", {"premise": premises, "hypothesis": hypotheses}, imports=("tensorflow_text",))
    for i in range(2):
        p = nli.predict("run", premise=premises[i], hypothesis=hypotheses[i])
        assert got["label"][i].decode() == p["label"]
        np.testing.assert_allclose(got["probabilities"][i], [p["probabilities"][n] for n in snli.LABELS], atol=1e-4)
        assert (got["words"][i], got["unknown_words"][i]) == (p["words"], p["unknown_words"])
