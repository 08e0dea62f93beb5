"""nlp.bert_data: pair encoding by hand, the book's NSP pairs and the masks."""
import numpy as np
import pytest

from common.errors import DlsuiteError
from nlp import bert, bert_data

VOCAB = bert_data.RESERVED_TOKENS + ["the", "cat", "sat", "on", "mat", "dog", "##s", "a", ".", "yes", "no",
                                     "maybe"]
ID = {t: i for i, t in enumerate(VOCAB)}


def test_encode_pairs_packs_cls_a_sep_b_sep():
    tokenizer = bert_data.make_tokenizer(VOCAB)
    x = bert_data.encode_pairs(tokenizer, ["The cats sat", "a dog"], ["on the mat .", "zebra"], 10)
    cls, sep, unk = ID["[CLS]"], ID["[SEP]"], ID["[UNK]"]
    # 8 pieces for 7 places: round-robin truncation takes the last piece off the longer (second) side
    first = [cls, ID["the"], ID["cat"], ID["##s"], ID["sat"], sep, ID["on"], ID["the"], ID["mat"], sep]
    second = [cls, ID["a"], ID["dog"], sep, unk, sep, 0, 0, 0, 0]
    assert x["token_ids"].tolist() == [first, second]
    assert x["segment_ids"].tolist() == [[0] * 6 + [1] * 4, [0] * 4 + [1] * 2 + [0] * 4]
    assert x["padding_mask"].tolist() == [[1] * 10, [1] * 6 + [0] * 4]
    assert all(v.dtype == np.int32 for v in x.values())
    with pytest.raises(DlsuiteError, match="2 premises but 1 hypotheses"):
        bert_data.encode_pairs(tokenizer, ["a", "b"], ["c"], 10)


def test_pretraining_pairs_are_the_books():
    tokenizer = bert_data.make_tokenizer(VOCAB)
    paragraphs = [["the cat", "the dog", "a mat"], ["yes", "no"], ["maybe", "the mat", "on", "a cat"]]
    corpus = bert_data.PretrainingCorpus(paragraphs, tokenizer)
    assert corpus.firsts.tolist() == [0, 1, 3, 5, 6, 7]  # every sentence with a successor in its paragraph
    first, second, is_next = corpus.nsp_pairs(np.random.default_rng(0))
    assert (second[is_next == 1] == first[is_next == 1] + 1).all()
    halves = [corpus.nsp_pairs(np.random.default_rng(s))[2].mean() for s in range(2000)]
    assert np.mean(halves) == pytest.approx(0.5, abs=0.02)
    config = bert.Config(max_len=12, mask_rate=0.25)
    inputs, targets = bert_data.pretraining_examples(corpus, tokenizer, config, np.random.default_rng(0), 7)
    again, _ = bert_data.pretraining_examples(corpus, tokenizer, config, np.random.default_rng(0), 7)
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
    assert bert_data.most_frequent_token_accuracy({"mask_ids": np.array([[5, 5, 0], [6, 5, 9]]),
                                              "mask_weights": np.array([[1, 1, 0], [1, 1, 1.0]])}) == 0.6
