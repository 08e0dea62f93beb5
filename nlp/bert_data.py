"""BERT's pretraining data (the book's 14.9), from keras-hub: the WordPiece vocabulary and tokenizer,
sentence-pair packing (`[CLS] a [SEP] b [SEP]`), the next-sentence-prediction corpus and masking.

`nlp.bert` is the command, `nlp.bert_model` the pretrainer, its heads and preset I/O. `nlp.nli`
fine-tunes BERT on sentence pairs with `encode_pairs`.
"""
import random

import numpy as np
import tensorflow as tf

from common.errors import DlsuiteError
from common.extras import require

RESERVED_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
EVAL_SEED = 12345  # NSP pairs and masks of the held-out and test data: the same for every run


def require_keras_hub():
    """The `keras_hub` module, or a one-line `DlsuiteError` naming the extra that installs it."""
    return require("keras_hub", "nlp")


# --- tokenizer and packing (public: nlp.nli uses them) ------------------------------------------
def make_tokenizer(vocabulary):
    """A lower-casing `keras_hub.models.BertTokenizer` (WordPiece, [CLS]/[SEP]/[PAD]/[MASK]) over
    `vocabulary`, a list of word pieces or a vocabulary file path."""
    return require_keras_hub().models.BertTokenizer(vocabulary=vocabulary, lowercase=True)


def learn_vocabulary(sentences, size):
    """A WordPiece vocabulary (list of at most `size` pieces, `RESERVED_TOKENS` first) learned from
    `sentences` (strings) by `keras_hub.tokenizers.compute_word_piece_vocabulary`, lower-cased."""
    data = tf.data.Dataset.from_tensor_slices(list(sentences)).batch(4096)
    return require_keras_hub().tokenizers.compute_word_piece_vocabulary(data, size, lowercase=True,
                                                                        reserved_tokens=RESERVED_TOKENS)


def tokenize(tokenizer, texts, batch_size=4096):
    """Word-piece ids of `texts` (strings) as an int32 `tf.RaggedTensor` `(len(texts), None)`."""
    texts = [str(t) for t in texts]
    if not texts:
        return tf.ragged.constant([], dtype=tf.int32, ragged_rank=1)
    parts = list(tf.data.Dataset.from_tensor_slices(texts).batch(batch_size).map(tokenizer))
    return tf.cast(tf.concat(parts, axis=0), tf.int32)


def coverage(tokenizer, texts):
    """How much of `texts` (strings) the WordPiece vocabulary knows, as `nlp.text.coverage`:
    `{"words", "unknown_words", "known_fraction"}`. The words are what the tokenizer splits the
    texts into (on whitespace and punctuation: a piece not starting with `##` begins one); a word
    no run of pieces matches becomes one `[UNK]`, an unknown word."""
    pieces = [tokenizer.id_to_token(int(i)) for t in texts for i in tokenize(tokenizer, [t])[0].numpy()]
    words = sum(1 for p in pieces if not p.startswith("##"))
    unknown = pieces.count("[UNK]")
    return {"words": words, "unknown_words": unknown,
            "known_fraction": round((words - unknown) / words, 4) if words else 0.0}


def segment_packer(tokenizer, seq_len):
    """keras-hub's `MultiSegmentPacker` of `[CLS] a [SEP] (b [SEP])`, truncated round-robin and padded to
    `seq_len` with `tokenizer`'s ids (also inside exported graphs: `nlp.bert_model.export`)."""
    return require_keras_hub().layers.MultiSegmentPacker(
        sequence_length=seq_len, start_value=tokenizer.cls_token_id, end_value=tokenizer.sep_token_id,
        pad_value=tokenizer.pad_token_id, truncate="round_robin")


def pack_pairs(tokenizer, first, second, seq_len):
    """Pack ragged word-piece ids `first`, `second` `(n, None)` into `[CLS] a [SEP] b [SEP]`,
    truncated round-robin (the longer side loses pieces first) and padded to `seq_len`.
    `second=None` packs single segments `[CLS] a [SEP]`. Returns NumPy int32 `token_ids`,
    `segment_ids` (0 for [CLS] a [SEP], 1 for b [SEP]) and `padding_mask` (1 on real tokens),
    each `(n, seq_len)`."""
    token_ids, segment_ids = segment_packer(tokenizer, seq_len)((first,) if second is None else (first, second))
    token_ids = np.asarray(token_ids, np.int32)
    return {"token_ids": token_ids, "segment_ids": np.asarray(segment_ids, np.int32),
            "padding_mask": (token_ids != tokenizer.pad_token_id).astype(np.int32)}


def encode_pairs(tokenizer, premises, hypotheses, seq_len):
    """BERT inputs for sentence pairs: `[CLS] premise [SEP] hypothesis [SEP]`, lower-cased and
    split into word pieces by `tokenizer`, truncated round-robin and padded to `seq_len`.

    `premises`, `hypotheses`: equal-length sequences of strings (already tokenised text is fine:
    words are split on whitespace and punctuation). Returns a dict of NumPy int32 arrays
    `token_ids`, `segment_ids` and `padding_mask`, each `(n, seq_len)`, the input a
    `keras_hub.models.BertBackbone` (and `pair_classifier`) takes."""
    if len(premises) != len(hypotheses):
        raise DlsuiteError(f"{len(premises)} premises but {len(hypotheses)} hypotheses; they must pair up")
    return pack_pairs(tokenizer, tokenize(tokenizer, premises), tokenize(tokenizer, hypotheses), seq_len)



# --- pretraining data -------------------------------------------------------------------------------
class PretrainingCorpus:
    """Paragraphs of sentences tokenised once: `ids` an int32 `tf.RaggedTensor` `(sentences, None)`
    of word pieces, `paragraph_start`/`paragraph_size` int64 `(paragraphs,)` locating each
    paragraph's sentences, and `firsts` int64 the sentences that have a successor in their paragraph
    (the first halves of NSP pairs)."""

    def __init__(self, paragraphs, tokenizer):
        sizes = np.array([len(p) for p in paragraphs], np.int64)
        self.paragraph_size = sizes
        self.paragraph_start = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.ids = tokenize(tokenizer, [s for p in paragraphs for s in p])
        last = self.paragraph_start + sizes - 1
        self.firsts = np.setdiff1d(np.arange(int(sizes.sum()), dtype=np.int64), last)

    def __len__(self):
        return len(self.firsts)

    def nsp_pairs(self, rng):
        """The book's NSP pairs: (first, second, is_next) int64/int64/int32 arrays `(len(self),)`;
        each first sentence is followed by its successor with probability 1/2, else by a random
        sentence of a random paragraph (which can, rarely, be the successor: label 0 still)."""
        n = len(self.firsts)
        is_next = rng.random(n) < 0.5
        paragraph = rng.integers(len(self.paragraph_size), size=n)
        other = self.paragraph_start[paragraph] + (rng.random(n) * self.paragraph_size[paragraph]).astype(np.int64)
        return self.firsts, np.where(is_next, self.firsts + 1, other), is_next.astype(np.int32)


def mask_tokens(token_ids, tokenizer, config, seed):
    """`keras_hub.layers.MaskedLMMaskGenerator` over packed `token_ids` `(n, max_len)`, seeded by
    `seed` (the same masks for the same seed): `config.mask_rate` of the word pieces other than
    [CLS]/[SEP]/[PAD], at most `config.max_predictions` a sequence, 80% [MASK] / 10% random / 10%
    kept. Returns NumPy `token_ids`, `mask_positions`, `mask_ids` (int32) and `mask_weights`
    (float32, 0 on padded prediction slots), the last three `(n, max_predictions)`."""
    generator = require_keras_hub().layers.MaskedLMMaskGenerator(
        vocabulary_size=tokenizer.vocabulary_size(), mask_selection_rate=config.mask_rate,
        mask_token_id=tokenizer.mask_token_id, mask_selection_length=config.max_predictions,
        unselectable_token_ids=[tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id],
        mask_token_rate=0.8, random_token_rate=0.1)
    # Called eagerly on NumPy input, the generator takes keras-hub's Python path, whose draws come
    # from Python's `random`: seeding it gives the same masks for the same seed (its tf.data path
    # draws from unseeded TensorFlow kernels). The caller's `random` state is put back afterwards.
    state = random.getstate()
    random.seed(int(seed))
    try:
        out = generator(np.asarray(token_ids, np.int32))
    finally:
        random.setstate(state)
    return {k: np.asarray(v, np.float32 if k == "mask_weights" else np.int32) for k, v in out.items()}


def pretraining_examples(corpus, tokenizer, config, rng, mask_seed):
    """One epoch of pretraining examples as NumPy arrays: `(inputs, targets)` with inputs
    `token_ids`, `segment_ids`, `padding_mask` `(n, max_len)` and `mask_positions`
    `(n, max_predictions)`, targets `mask_ids`, `mask_weights` `(n, max_predictions)` and
    `nsp_labels` `(n,)` (1: the second sentence is the true next one)."""
    first, second, is_next = corpus.nsp_pairs(rng)
    packed = pack_pairs(tokenizer, tf.gather(corpus.ids, first), tf.gather(corpus.ids, second), config.max_len)
    masked = mask_tokens(packed["token_ids"], tokenizer, config, mask_seed)
    inputs = {"token_ids": masked["token_ids"], "segment_ids": packed["segment_ids"],
              "padding_mask": packed["padding_mask"], "mask_positions": masked["mask_positions"]}
    targets = {"mask_ids": masked["mask_ids"], "mask_weights": masked["mask_weights"], "nsp_labels": is_next}
    return inputs, targets


def fixed_examples(corpus, tokenizer, config):
    """The held-out or test examples: NSP pairs and masks drawn once from `EVAL_SEED`."""
    return pretraining_examples(corpus, tokenizer, config, np.random.default_rng(EVAL_SEED), EVAL_SEED)


def most_frequent_token_accuracy(targets):
    """Accuracy of always predicting the most frequent masked word piece of `targets` (the best
    constant guess on these very positions): the baseline `mlm_accuracy` is read against."""
    ids = targets["mask_ids"][targets["mask_weights"] > 0]
    return float(np.bincount(ids).max() / len(ids)) if len(ids) else 0.0

