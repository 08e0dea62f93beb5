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
`epoch_seed`, through the generator's Python path), so a resumed run sees the same data.

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
import argparse
import json
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from common import cli, training
from common.data import epoch_dataset, epoch_rng, epoch_seed, split_indices
from common.distribute import scale_loss, use_xla
from common.errors import DlsuiteError, UsageError
from common.extras import require
from common.files import atomic_path
from nlp import wikitext
from nlp.classify import VOCAB_FILE, load_tokens, save_tokens
from nlp.text import warn_no_basis

RESERVED_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PRESET_DIR = "preset"
EVAL_SEED = 12345  # NSP pairs and masks of the held-out and test data: the same for every run


def _hub():
    return require("keras_hub", "nlp")


@dataclass
class Config(cli.TrainConfig):
    epochs: int = 72
    batch_size: int = 32
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
    nsp_weight: float = field(default=1.0, metadata=cli.bounds(
        "[0, inf)", "weight of the NSP loss in the training loss MLM + w x NSP (the book: 1)"))
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
    generator = _hub().layers.MaskedLMMaskGenerator(
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


# --- the pretraining model -------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="dlsuite")
class BertPretrainer(keras.Model):
    """`backbone` plus the MLM head (`keras_hub.layers.MaskedLMHead`, tied to the token embedding)
    and the NSP head (`Dense(2)` on the pooled [CLS] output).

    `call(inputs)` -> (MLM logits `(batch, max_predictions, vocabulary)`, NSP logits `(batch, 2)`).
    The loss is the book's: masked-token cross-entropy (mean over the global batch's real
    prediction slots) plus NSP cross-entropy (mean over pairs) times `nsp_weight` (the book: 1),
    scaled by `common.distribute.scale_loss`, so N replicas take the one-replica step. The logged
    `mlm_loss`/`nsp_loss` are the epoch's means over masked positions/pairs; `loss` is
    `mlm_loss + nsp_weight * nsp_loss`.
    """

    def __init__(self, backbone, nsp_weight=1.0, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone
        self.nsp_weight = float(nsp_weight)
        init = keras.initializers.TruncatedNormal(stddev=0.02)
        self.mlm_head = _hub().layers.MaskedLMHead(
            vocabulary_size=backbone.vocabulary_size, token_embedding=backbone.token_embedding,
            intermediate_activation="gelu", kernel_initializer=init, name="mlm_head")
        self.nsp_head = keras.layers.Dense(2, kernel_initializer=init, name="nsp_head")
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in ("mlm_loss", "mlm_accuracy", "nsp_loss", "nsp_accuracy")}

    def call(self, inputs, training=False):
        encoded = self.backbone({k: inputs[k] for k in ("token_ids", "segment_ids", "padding_mask")},
                                training=training)
        mlm_logits = self.mlm_head(encoded["sequence_output"], mask_positions=inputs["mask_positions"])
        return mlm_logits, self.nsp_head(encoded["pooled_output"])

    def _heads_losses(self, batch, training):
        inputs, targets = batch
        mlm_logits, nsp_logits = self(inputs, training=training)
        weights = tf.cast(targets["mask_weights"], tf.float32)
        mlm_ce = keras.losses.sparse_categorical_crossentropy(targets["mask_ids"], mlm_logits, from_logits=True)
        # the mean over the masked positions of the whole global batch: each replica divides its sum by
        # the global count (times the replicas, which `scale_loss` divides out again)
        replica = tf.distribute.get_replica_context()
        count = tf.reduce_sum(weights)
        replicas = 1
        if replica is not None:
            count, replicas = replica.all_reduce("SUM", count), replica.num_replicas_in_sync
        mlm_loss = tf.reduce_sum(mlm_ce * weights) / tf.maximum(count, 1.0) * replicas
        nsp_ce = keras.losses.sparse_categorical_crossentropy(targets["nsp_labels"], nsp_logits, from_logits=True)
        mlm_hit = tf.cast(tf.equal(tf.argmax(mlm_logits, -1, output_type=tf.int32), targets["mask_ids"]), tf.float32)
        nsp_hit = tf.cast(tf.equal(tf.argmax(nsp_logits, -1, output_type=tf.int32), targets["nsp_labels"]),
                          tf.float32)
        return mlm_loss, tf.reduce_mean(nsp_ce), (mlm_ce, weights, mlm_hit, nsp_ce, nsp_hit)

    def _track(self, per_example):
        mlm_ce, weights, mlm_hit, nsp_ce, nsp_hit = per_example
        self.trackers["mlm_loss"].update_state(mlm_ce, sample_weight=weights)
        self.trackers["mlm_accuracy"].update_state(mlm_hit, sample_weight=weights)
        self.trackers["nsp_loss"].update_state(nsp_ce)
        self.trackers["nsp_accuracy"].update_state(nsp_hit)
        logs = {name: t.result() for name, t in self.trackers.items()}
        return {"loss": logs["mlm_loss"] + self.nsp_weight * logs["nsp_loss"], **logs}

    def train_step(self, batch):
        with tf.GradientTape() as tape:
            mlm_loss, nsp_loss, hits = self._heads_losses(batch, training=True)
            scaled = scale_loss(mlm_loss + self.nsp_weight * nsp_loss)
        grads = tape.gradient(scaled, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return self._track(hits)

    def test_step(self, batch):
        return self._track(self._heads_losses(batch, training=False)[2])

    @property
    def metrics(self):
        return list(self.trackers.values())

    def get_config(self):
        return {**super().get_config(), "backbone": keras.saving.serialize_keras_object(self.backbone),
                "nsp_weight": self.nsp_weight}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(keras.saving.deserialize_keras_object(config.pop("backbone")), **config)


def build(config, vocabulary_size, total_steps=1):
    """A compiled `BertPretrainer` (AdamW, cosine decay from `config.lr` over `total_steps`; no
    weight decay on biases and layer norms), its variables created."""
    model = BertPretrainer(build_backbone(config, vocabulary_size), nsp_weight=config.nsp_weight)
    optimizer = keras.optimizers.AdamW(training.CosineSchedule(config.lr, total_steps),
                                       weight_decay=config.weight_decay)
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    model.compile(optimizer, jit_compile=use_xla())
    p = config.max_predictions
    model({"token_ids": np.zeros((1, config.max_len), np.int32), "segment_ids": np.zeros((1, config.max_len), np.int32),
           "padding_mask": np.ones((1, config.max_len), np.int32), "mask_positions": np.zeros((1, p), np.int32)})
    return model


def _check_checkpoint(run_dir, model, vocabulary_size, config):
    """One-line errors for a checkpoint trained with another vocabulary size or sequence length
    than this pipeline's (instead of the spine's generic shape mismatch)."""
    checkpoint = training.Run(run_dir, resume=True).latest_checkpoint()
    saved = json.loads((checkpoint / "weights.json").read_text()).get("model", [])
    variables = model.variables
    for layer, what, have, flag in ((model.backbone.token_embedding, "a vocabulary of", vocabulary_size,
                                     f"{VOCAB_FILE} in {run_dir}"),
                                    (model.backbone.position_embedding, "sequence length", config.max_len,
                                     "--max-len")):
        index = next(i for i, v in enumerate(variables) if v is layer.weights[0])
        if index < len(saved) and saved[index][0] != have:
            raise DlsuiteError(f"{checkpoint} was trained with {what} {saved[index][0]}, but {flag} gives {have}; "
                               "use the run's own settings and vocabulary")


def _load_vocabulary(run_dir):
    """The run's WordPiece vocabulary (`nlp.classify.load_tokens`); one-line `DlsuiteError` when
    `vocab.txt` is missing (a newly learned vocabulary would not match the checkpoint's token embedding rows)."""
    return load_tokens(run_dir, missing="{path} is missing: the run's checkpoints need the vocabulary they were "
                                        "trained with (a new one would not match their embedding rows); restore it "
                                        "or train a new run", required=RESERVED_TOKENS)


def _split_off(paragraphs, ratio, seed):
    """(fit, held-out) paragraphs: a seeded `ratio` of them held out (at least one when ratio > 0)."""
    keep, held = split_indices(len(paragraphs), ratio, seed, min_held=1)
    if ratio and not len(keep):
        raise DlsuiteError(f"{len(paragraphs)} training paragraphs are too few to hold out --val-ratio {ratio}")
    return [paragraphs[i] for i in keep], [paragraphs[i] for i in held]


def _dataset(inputs, targets, batch_size):
    return tf.data.Dataset.from_tensor_slices((inputs, targets)).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def pretrain(ctx):
    cfg = ctx.config
    resume = getattr(ctx.args, "resume", False)
    vocabulary = _load_vocabulary(ctx.run_dir) if resume else None
    train_paragraphs, test_paragraphs, split = wikitext.load_splits(ctx.data_dir, ctx.demo)
    fit_paragraphs, val_paragraphs = _split_off(train_paragraphs, cfg.val_ratio, cfg.seed)
    vocabulary = vocabulary or learn_vocabulary([s for p in fit_paragraphs for s in p], cfg.vocab_size)
    tokenizer = make_tokenizer(vocabulary)
    corpus = PretrainingCorpus(fit_paragraphs, tokenizer)
    steps = -(-len(corpus) // cfg.batch_size)
    with ctx.strategy.scope():
        model = build(cfg, len(vocabulary), steps * cfg.epochs)
    if resume:
        _check_checkpoint(ctx.run_dir, model, len(vocabulary), cfg)
    run = ctx.run()
    if not resume:
        save_tokens(run, vocabulary)  # only the chief writes it

    def dataset(epoch):
        inputs, targets = pretraining_examples(corpus, tokenizer, cfg, epoch_rng(cfg.seed, epoch),
                                               epoch_seed(cfg.seed, epoch))
        return epoch_dataset((inputs, targets), cfg.batch_size, cfg.seed, epoch)

    validation = _dataset(*fixed_examples(PretrainingCorpus(val_paragraphs, tokenizer), tokenizer, cfg),
                          cfg.batch_size) if val_paragraphs else None
    history = training.fit(model, dataset, run, epochs=cfg.epochs, validation_data=validation,
                           on_epoch_end=lambda epoch, logs: {"pairs_per_s": round(len(corpus) / logs["time_s"], 1)})
    if run.chief:
        save_preset(model.backbone, tokenizer, cfg.max_len, run.file(PRESET_DIR))
    test = _test_metrics(model, tokenizer, cfg, test_paragraphs)
    last = history[-1] if history else {}
    return {**{k: last[k] for k in ("mlm_loss", "mlm_accuracy", "nsp_loss", "nsp_accuracy") if k in last},
            **{f"test_{k}": v for k, v in test.items()}, "trained_on": split, "training_pairs": len(corpus),
            "vocabulary_size": len(vocabulary), "pairs_per_s": last.get("pairs_per_s")}


def _test_metrics(model, tokenizer, cfg, paragraphs):
    inputs, targets = fixed_examples(PretrainingCorpus(paragraphs, tokenizer), tokenizer, cfg)
    result = model.evaluate(_dataset(inputs, targets, cfg.batch_size), return_dict=True, verbose=0)
    metrics = {k: round(float(result[k]), 4) for k in ("mlm_loss", "mlm_accuracy", "nsp_loss", "nsp_accuracy")}
    return {**metrics, "mlm_baseline_accuracy": round(most_frequent_token_accuracy(targets), 4),
            "pairs": len(targets["nsp_labels"])}


def restore(ctx, vocabulary):
    """The run's `BertPretrainer` from its newest checkpoint, checked against `vocabulary`."""
    with ctx.strategy.scope():
        model = build(ctx.config, len(vocabulary))
    _check_checkpoint(ctx.run_dir, model, len(vocabulary), ctx.config)
    ctx.restore(model)
    return model


def evaluate(ctx):
    """MLM and NSP loss and accuracy on the test split (pairs and masks fixed by `EVAL_SEED`), and
    the most-frequent-masked-token baseline accuracy."""
    vocabulary = _load_vocabulary(ctx.run_dir)
    tokenizer = make_tokenizer(vocabulary)
    test_paragraphs = wikitext.load_test(ctx.data_dir, ctx.demo)
    model = restore(ctx, vocabulary)
    return _test_metrics(model, tokenizer, ctx.config, test_paragraphs)


def _encode_arguments(parser):
    parser.add_argument("texts", nargs="+", metavar="TEXT", help='a sentence, or two ("text a" "text b")')
    parser.add_argument("--preset", type=Path, metavar="DIR",
                        help="encode with a local keras-hub BERT preset directory instead of a run")


def encode_texts(backbone, tokenizer, texts, max_len):
    """Encode one text or a pair (unpadded): the word pieces and BERT's outputs' shapes and [CLS] vector,
    and the vocabulary's `coverage` of the texts (a one-line warning on stderr when it knows no word)."""
    if not 1 <= len(texts) <= 2:
        raise UsageError(f"encode takes one text or two (a pair), got {len(texts)}")
    known = coverage(tokenizer, texts)
    if known["words"] and known["unknown_words"] == known["words"]:
        warn_no_basis("the text", known["words"], tokenizer.vocabulary_size())
    pieces = [tokenize(tokenizer, [t]) for t in texts]
    length = min(max_len, sum(int(p.row_lengths()[0]) for p in pieces) + 1 + len(texts))
    x = pack_pairs(tokenizer, pieces[0], pieces[1] if len(pieces) > 1 else None, length)
    out = backbone(x)
    tokens = [tokenizer.id_to_token(int(i)) for i in x["token_ids"][0]]
    return {"tokens": tokens, "token_ids_shape": list(x["token_ids"].shape),
            "sequence_output_shape": list(out["sequence_output"].shape),
            "pooled_output_shape": list(out["pooled_output"].shape),
            "cls": [round(float(v), 4) for v in np.asarray(out["sequence_output"][0, 0])], **known}


def encode(ctx):
    if ctx.args.preset is not None:
        raise UsageError("encode reads a BERT from --preset DIR or from a run (--run-dir), not both")
    backbone, tokenizer, seq_len = load_backbone(run_dir=ctx.run_dir)
    return encode_texts(backbone, tokenizer, ctx.args.texts, seq_len)


def encode_preset(args):
    backbone, tokenizer, seq_len = load_backbone(preset=args.preset)
    return encode_texts(backbone, tokenizer, args.texts, seq_len)


COMMANDS = {
    "pretrain": cli.Command(pretrain, "pretrain BERT (masked LM + next sentence) on WikiText-2", trains=True),
    "evaluate": cli.Command(evaluate, "MLM and NSP loss/accuracy of a pretrained run on the test split"),
    "encode": cli.Command(encode, "BERT's outputs for a text or a text pair (shapes, [CLS] vector)",
                          add_arguments=_encode_arguments, reads_data=False),
}
PRESETS = {"book": BOOK}
DESCRIPTION = "BERT pretraining (masked LM + next sentence prediction) on WikiText-2, from keras-hub"


def _encodes_a_preset(argv):
    """Whether `argv` is `encode` with `--preset DIR` (either spelling, `--preset=DIR` too) and no
    `--run-dir`, read by argparse as the real parser reads it. `cli.Command` has no mode for a
    command that works on a run unless a flag names another source, so this one needs no run
    directory only by going through `cli.tool_main`; a malformed line goes to `cli.main`, whose
    parser reports it."""
    if argv[:1] != ["encode"]:
        return False
    probe = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    probe.add_argument("--preset")
    probe.add_argument("--run-dir")
    try:
        flags = probe.parse_known_args(argv[1:])[0]
    except argparse.ArgumentError:
        return False
    return flags.preset is not None and flags.run_dir is None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    if _encodes_a_preset(argv):
        return cli.tool_main(DESCRIPTION, {"encode": cli.Tool(encode_preset, COMMANDS["encode"].help,
                                                              add_arguments=_encode_arguments)}, argv)
    return cli.main(DESCRIPTION, Config, COMMANDS, demo=DEMO, argv=argv, presets=PRESETS)


if __name__ == "__main__":
    sys.exit(main())
