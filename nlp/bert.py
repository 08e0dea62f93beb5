"""BERT pretraining on WikiText-2 (the book's 14.8-14.10), assembled from keras-hub.

The encoder is `keras_hub.models.BertBackbone` configured from `Config` (the book's small one
by default: 2 layers, 128 hidden, 256 FFN, 2 heads, 64 tokens), the masked-language-model head
is `keras_hub.layers.MaskedLMHead` tied to the token embedding, the vocabulary is WordPiece
(`keras_hub.tokenizers.compute_word_piece_vocabulary`, used through `BertTokenizer`, a
`WordPieceTokenizer` with BERT's special tokens), sequence pairs are packed by
`keras_hub.layers.MultiSegmentPacker` and masked by `keras_hub.layers.MaskedLMMaskGenerator`
(15% of the word pieces; 80% [MASK], 10% random, 10% unchanged). keras-hub has no
next-sentence-prediction head: ours is a `Dense(2)` on the backbone's pooled output (a tanh
layer on [CLS]), the book's MLP. NSP pairs are the book's: every sentence that has a successor
in its paragraph is paired 50/50 with that successor or with a random sentence of a random
paragraph, drawn afresh each epoch from `common.data.epoch_rng(seed, epoch)` (masks from
`epoch_seed`), so a resumed run sees the same data.

    python -m nlp.bert pretrain --data-dir ../shared/data/wikitext-2    # trains on valid (no train file)
    python -m nlp.bert evaluate                                         # the newest run, on the test split
    python -m nlp.bert encode "a crane is flying" "he bought a crane"   # shapes and the [CLS] vector
    python -m nlp.bert encode --preset PATH/TO/bert_tiny_en_uncased "some text"
    python -m nlp.bert pretrain --demo                                  # offline, under a minute

The run directory holds `vocab.txt`, `checkpoints/`, `metrics.json` (per epoch: the training
losses and accuracies and the same on a held-out part of the training paragraphs), `curves.png`,
`model.keras` and `preset/`, a keras-hub preset directory (backbone, tokenizer, preprocessor)
that `keras_hub.models.BertBackbone.from_preset` and `load_backbone` read.

For other modules (fine-tuning in `nlp.nli`): `load_backbone`, `encode_pairs`, `pair_classifier`.
"""
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from common import cli, training
from common.data import epoch_dataset, epoch_rng, epoch_seed
from common.distribute import scale_loss
from common.errors import DlsuiteError, UsageError
from common.extras import require
from common.files import atomic_path

RESERVED_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB_FILE = "vocab.txt"
PRESET_DIR = "preset"
EVAL_SEED = 12345  # NSP pairs and masks of the held-out and test data: the same for every run


def _hub():
    return require("keras_hub", "nlp")


@dataclass
class Config(cli.TrainConfig):
    epochs: int = 30
    batch_size: int = 64
    lr: float = field(default=1e-3, metadata=cli.positive("peak Adam learning rate (cosine decay to 0)"))
    num_layers: int = field(default=2, metadata=cli.at_least(1, "transformer encoder blocks"))
    hidden_dim: int = field(default=128, metadata=cli.at_least(1, "hidden size of the encoder"))
    intermediate_dim: int = field(default=256, metadata=cli.at_least(1, "hidden size of the feed-forward layers"))
    num_heads: int = field(default=2, metadata=cli.at_least(1, "attention heads (must divide --hidden-dim)"))
    max_len: int = field(default=64, metadata=cli.at_least(8, "tokens per packed sentence pair"))
    dropout: float = field(default=0.1, metadata=cli.bounds("[0, 1)", "dropout in the encoder"))
    vocab_size: int = field(default=5000, metadata=cli.at_least(
        16, "largest WordPiece vocabulary to learn (the learner may return fewer pieces)"))
    mask_rate: float = field(default=0.15, metadata=cli.bounds("(0, 1)", "fraction of word pieces masked"))
    weight_decay: float = field(default=0.01, metadata=cli.bounds("[0, inf)", "AdamW weight decay"))
    val_ratio: float = field(default=0.05, metadata=cli.bounds(
        "[0, 1)", "fraction of the training paragraphs held out for per-epoch validation"))

    def validate(self):
        super().validate()
        if self.hidden_dim % self.num_heads:
            raise UsageError(f"--num-heads {self.num_heads} must divide --hidden-dim {self.hidden_dim}")

    @property
    def max_predictions(self):
        """Masked positions per sequence (the book's round(max_len * 0.15))."""
        return max(1, round(self.max_len * self.mask_rate))


DEMO = {"epochs": 4, "batch_size": 32, "vocab_size": 200, "lr": 2e-3, "max_len": 32}
# The book's 14.10: batch 512, Adam 0.01, dropout 0.2 (it trains 50 steps, about 1 epoch here).
BOOK = {"batch_size": 512, "lr": 0.01, "dropout": 0.2, "weight_decay": 0.0, "epochs": 2}


# --- tokenizer and packing (public: nlp.nli uses them) ------------------------------------------
def make_tokenizer(vocabulary):
    """A lower-casing `keras_hub.models.BertTokenizer` (WordPiece, [CLS]/[SEP]/[PAD]/[MASK]) over
    `vocabulary`, a list of word pieces or a vocabulary file path."""
    return _hub().models.BertTokenizer(vocabulary=vocabulary, lowercase=True)


def learn_vocabulary(sentences, size):
    """A WordPiece vocabulary (list of at most `size` pieces, `RESERVED_TOKENS` first) learned from
    `sentences` (strings) by `keras_hub.tokenizers.compute_word_piece_vocabulary`, lower-cased."""
    data = tf.data.Dataset.from_tensor_slices(list(sentences)).batch(4096)
    return _hub().tokenizers.compute_word_piece_vocabulary(data, size, lowercase=True,
                                                           reserved_tokens=RESERVED_TOKENS)


def tokenize(tokenizer, texts, batch_size=4096):
    """Word-piece ids of `texts` (strings) as an int32 `tf.RaggedTensor` `(len(texts), None)`."""
    texts = [str(t) for t in texts]
    if not texts:
        return tf.ragged.constant([], dtype=tf.int32, ragged_rank=1)
    parts = list(tf.data.Dataset.from_tensor_slices(texts).batch(batch_size).map(tokenizer))
    return tf.cast(tf.concat(parts, axis=0), tf.int32)


def pack_pairs(tokenizer, first, second, seq_len):
    """Pack ragged word-piece ids `first`, `second` `(n, None)` into `[CLS] a [SEP] b [SEP]`,
    truncated round-robin (the longer side loses pieces first) and padded to `seq_len`.
    `second=None` packs single segments `[CLS] a [SEP]`. Returns NumPy int32 `token_ids`,
    `segment_ids` (0 for [CLS] a [SEP], 1 for b [SEP]) and `padding_mask` (1 on real tokens),
    each `(n, seq_len)`."""
    packer = _hub().layers.MultiSegmentPacker(
        sequence_length=seq_len, start_value=tokenizer.cls_token_id, end_value=tokenizer.sep_token_id,
        pad_value=tokenizer.pad_token_id, truncate="round_robin")
    token_ids, segment_ids = packer((first,) if second is None else (first, second))
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


# --- backbone, heads, presets ---------------------------------------------------------------------
def build_backbone(config, vocabulary_size):
    """A `keras_hub.models.BertBackbone` with `config`'s sizes and `vocabulary_size` token rows."""
    return _hub().models.BertBackbone(
        vocabulary_size=vocabulary_size, num_layers=config.num_layers, num_heads=config.num_heads,
        hidden_dim=config.hidden_dim, intermediate_dim=config.intermediate_dim, dropout=config.dropout,
        max_sequence_length=config.max_len)


def check_pipeline(backbone, tokenizer, seq_len, source):
    """One-line `DlsuiteError` unless `tokenizer`'s vocabulary has exactly as many pieces as
    `backbone`'s token embedding has rows and `seq_len` fits its position embedding."""
    pieces, rows = tokenizer.vocabulary_size(), backbone.vocabulary_size
    if pieces != rows:
        raise DlsuiteError(f"{source}: the tokenizer has {pieces} word pieces but the BERT's token embedding "
                           f"has {rows} rows; pair the checkpoint with its own vocabulary")
    if seq_len > backbone.max_sequence_length:
        raise DlsuiteError(f"{source}: sequence length {seq_len} is longer than the BERT's "
                           f"{backbone.max_sequence_length} positions; use --max-len {backbone.max_sequence_length} "
                           "or less")


def save_preset(backbone, tokenizer, seq_len, directory):
    """Write `backbone`, `tokenizer` and a `BertTextClassifierPreprocessor` of `seq_len` as a
    keras-hub preset directory (atomically: a failure leaves no half-written preset)."""
    hub = _hub()
    with atomic_path(Path(directory), directory=True) as tmp:
        backbone.save_to_preset(str(tmp))
        hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=seq_len).save_to_preset(str(tmp))


def _read_preset(directory):
    hub = _hub()
    directory = Path(directory).expanduser()
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise DlsuiteError(f"--preset {directory} is not a keras-hub preset directory (no config.json)")
    try:
        kind = json.loads(config_file.read_text()).get("class_name", "")
    except (ValueError, UnicodeDecodeError, AttributeError):
        raise DlsuiteError(f"{config_file} is corrupt (not a JSON object)") from None
    if kind != "BertBackbone":
        raise DlsuiteError(f"--preset {directory} holds a {kind or 'unknown'} model, not a BERT (BertBackbone)")
    try:
        backbone = hub.models.BertBackbone.from_preset(str(directory))
        tokenizer = hub.models.BertTokenizer.from_preset(str(directory))
        seq_len = backbone.max_sequence_length
        if (directory / "preprocessor.json").is_file():
            seq_len = hub.models.BertTextClassifierPreprocessor.from_preset(str(directory)).sequence_length
    except (ValueError, OSError, KeyError, TypeError) as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise DlsuiteError(f"cannot load the keras-hub preset {directory}: {first}") from None
    return backbone, tokenizer, seq_len


def load_backbone(run_dir=None, preset=None, seq_len=None):
    """The pretrained encoder, its tokenizer and its sequence length, for fine-tuning.

    `run_dir`: a `python -m nlp.bert pretrain` run (its `preset/` directory, written at the end of
    pretraining). `preset`: any local keras-hub BERT preset directory (one written by
    `save_to_preset`, e.g. a downloaded `bert_tiny_en_uncased`); nothing is ever downloaded.
    `seq_len`: the data pipeline's sequence length (default: the preset's preprocessor's, else the
    backbone's largest). Returns `(keras_hub.models.BertBackbone, BertTokenizer, seq_len)`.
    Raises a one-line `DlsuiteError` when the directory is no BERT preset, or when the tokenizer's
    vocabulary size or `seq_len` disagrees with the backbone (`check_pipeline`).
    """
    if (run_dir is None) == (preset is None):
        raise UsageError("load a BERT from exactly one of a pretrain run directory or a --preset directory")
    if run_dir is not None:
        source = Path(run_dir) / PRESET_DIR
        if not (source / "config.json").is_file():
            raise DlsuiteError(f"{run_dir} holds no pretrained BERT ({PRESET_DIR}/ is missing); "
                               "pass the --run-dir of a finished `python -m nlp.bert pretrain`")
    else:
        source = Path(preset)
    backbone, tokenizer, default_len = _read_preset(source)
    seq_len = int(seq_len or default_len)
    check_pipeline(backbone, tokenizer, seq_len, source)
    return backbone, tokenizer, seq_len


def pair_classifier(backbone, num_classes, dropout=0.1):
    """A `keras.Model` classifying sentence pairs with `backbone`: the book's fine-tuning MLP
    (dropout, a `Dense(num_classes)`) on the backbone's pooled output (a tanh layer on [CLS]).

    Inputs: the dict `encode_pairs` returns (`token_ids`, `segment_ids`, `padding_mask`, each
    `(batch, seq_len)`). Output: logits `(batch, num_classes)` (no softmax). The backbone's
    weights are shared and trained with the head."""
    inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name)
              for name in ("token_ids", "segment_ids", "padding_mask")}
    pooled = backbone(inputs)["pooled_output"]
    hidden = keras.layers.Dropout(dropout, name="classifier_dropout")(pooled)
    logits = keras.layers.Dense(num_classes, name="classifier")(hidden)
    return keras.Model(inputs, logits, name="bert_pair_classifier")
