"""BERT's pretraining model (the book's 14.8 and 14.10), assembled from keras-hub: the backbone, the
masked-language-model and next-sentence-prediction heads, preset I/O, pretraining and evaluation.

`nlp.bert` is the command and its `Config`; `nlp.bert_data` makes the pretraining examples. For
other modules (fine-tuning in `nlp.nli`): `load_backbone`, `pair_classifier`.
"""
import json
from functools import lru_cache
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from common import native_stderr_captured, training
from common.data import epoch_dataset, epoch_rng, epoch_seed, split_indices
from common.distribute import scale_loss, use_xla
from common.errors import DlsuiteError, UsageError
from common.files import atomic_path
from nlp import wikitext
from nlp.bert_data import (RESERVED_TOKENS, PretrainingCorpus, coverage, fixed_examples, learn_vocabulary,
                           make_tokenizer, most_frequent_token_accuracy, pack_pairs, pretraining_examples,
                           require_keras_hub, tokenize)
from nlp.classify import VOCAB_FILE, load_tokens, save_tokens
from nlp.text import warn_no_basis

PRESET_DIR = "preset"
# oneDNN's notice, logged at error level (`E0000 ... util.cc:131]`) the first time a process runs an op on int64
# indices (Keras' `take_along_axis`, which `MaskedLMHead` gathers the masked positions with, casts them to int64)
# on a CPU without AVX-512: TensorFlow falls back to Eigen, nothing fails
INT64_NOTICE = "oneDNN supports DT_INT64 only on platforms with AVX-512"


# --- backbone, heads, presets ---------------------------------------------------------------------
def build_backbone(config, vocabulary_size):
    """A `keras_hub.models.BertBackbone` with `config`'s sizes and `vocabulary_size` token rows."""
    return require_keras_hub().models.BertBackbone(
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
    hub = require_keras_hub()
    with atomic_path(Path(directory), directory=True) as tmp:
        backbone.save_to_preset(str(tmp))
        hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=seq_len).save_to_preset(str(tmp))


def _read_preset(directory):
    hub = require_keras_hub()
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



# --- the pretraining model -------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _take_along_axis_quietly():
    """Run Keras' `take_along_axis` once with native stderr captured, and replay all it printed but oneDNN's
    `INT64_NOTICE`, so that line (which looks like an error to a user) is not printed later, mid-training.
    `TF_CPP_MIN_LOG_LEVEL=3` would hide it too, but with every real error. `DLSUITE_TF_LOGS=1` shows it."""
    with native_stderr_captured(keep=lambda line: INT64_NOTICE not in line):
        keras.ops.take_along_axis(np.zeros((1, 2, 1), np.float32), np.zeros((1, 1, 1), np.int32), axis=1)


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
        _take_along_axis_quietly()
        super().__init__(**kwargs)
        self.backbone = backbone
        self.nsp_weight = float(nsp_weight)
        init = keras.initializers.TruncatedNormal(stddev=0.02)
        self.mlm_head = require_keras_hub().layers.MaskedLMHead(
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



def export(ctx):
    """A SavedModel of the run's pretrained encoder reading raw text (`common.export.write`): the keras-hub
    `BertTokenizer` (lower-casing WordPiece; unknown words -> [UNK]) and `MultiSegmentPacker` run in the graph,
    as `encode` does. Signatures `serving_default` (input `text`) and `pair` (`text`, `text_pair`: [CLS] a [SEP]
    b [SEP], truncated round-robin), tf.string `(b,)`; outputs `cls` float32 `(b, hidden)` (the [CLS] row of
    the sequence output, `encode`'s vector), `sequence_output` `(b, max_len, hidden)`, `pooled_output`
    `(b, hidden)`, `token_ids` and `padding_mask` int32 `(b, max_len)` (1 on real tokens; sequences are padded
    to the run's --max-len). Loading it needs `import tensorflow_text` (the tokenizer's ops)."""
    from common import export as exporting
    from nlp import bert_data, serving

    serving.saved_model_only(ctx)
    backbone, tokenizer, seq_len = load_backbone(run_dir=ctx.run_dir)
    packer = bert_data.segment_packer(tokenizer, seq_len)
    module = tf.Module()
    module.tokenizer = tokenizer
    module.model_variables = [v.value for v in backbone.variables]  # not the Keras model (it traces its own)

    def outputs(*texts):
        token_ids, segment_ids = packer(tuple(tf.cast(tokenizer(t), tf.int32) for t in texts))
        token_ids, segment_ids = tf.cast(token_ids, tf.int32), tf.cast(segment_ids, tf.int32)
        padding_mask = tf.cast(token_ids != tokenizer.pad_token_id, tf.int32)
        out = backbone({"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask})
        return {"cls": out["sequence_output"][:, 0], "sequence_output": out["sequence_output"],
                "pooled_output": out["pooled_output"], "token_ids": token_ids, "padding_mask": padding_mask}

    text = tf.TensorSpec([None], tf.string, name="text")
    signatures = {"serving_default": tf.function(lambda text: outputs(text), input_signature=[text]),
                  "pair": tf.function(lambda text, text_pair: outputs(text, text_pair),
                                      input_signature=[text, tf.TensorSpec([None], tf.string, name="text_pair")])}
    readme = (f"{ctx.prog} export of {ctx.run_dir}: BERT's outputs for raw text (WordPiece in the graph; "
              f"sequences of --max-len {seq_len}, [CLS] a [SEP] (b [SEP]), padded).\n"
              "Load it after `import tensorflow_text` (the tokenizer's ops; TensorFlow Serving links them in).\n"
              "cls is the [CLS] row of sequence_output (what `encode` prints); padding_mask marks real tokens.\n"
              "An unknown word becomes [UNK]; an empty string gives [CLS] [SEP] and padding.\n\n"
              "example:\n  import tensorflow as tf, tensorflow_text  # noqa\n  model = tf.saved_model.load(DIR)\n"
              "  model.signatures['serving_default'](text=tf.constant(['a crane is flying']))['cls']\n"
              "  model.signatures['pair'](text=tf.constant(['a crane']), text_pair=tf.constant(['he bought it']))\n")
    vocabulary = "".join(f"{t}\n" for t in tokenizer.get_vocabulary())
    return exporting.write(ctx.args.out, module, signatures, readme=readme, files={"vocab.txt": vocabulary})
