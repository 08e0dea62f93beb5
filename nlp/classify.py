"""What the word-embedding text classifiers share: `nlp.nli`'s decomposable attention and
`nlp.sentiment`'s BiRNN and TextCNN.

- Config fields both declare (`max_len_field`, `min_freq_field`, `embeddings_field`,
  `freeze_embeddings_field`, `val_ratio_field`): field factories rather than a base dataclass,
  because a base class's fields come first in a dataclass, and so in `--help`, which would
  reorder both commands' flags.
- The run's vocabulary file (`save_vocab`, `load_vocab`; as a token list `save_tokens`, `load_tokens`) and class
  names (`save_classes`), the initial word vectors with their
  one-line OOV note (`initial_embeddings`, `embeddings_report`), the seeded held-back and
  validation parts of a training split (`holdout_indices`), training with a per-epoch
  validation accuracy (`fit`), restoring a trained run (`restore`), and batch-wise class
  probabilities (`class_probabilities`).

Importing it does not import TensorFlow (the commands' `Config`s use its fields): the functions
that train or run a model import it.
"""
import collections
import sys
from dataclasses import field
from pathlib import Path

import numpy as np

from common import cli
from common.data import epoch_dataset, split_indices
from common.errors import DatasetError, DlsuiteError
from common.files import atomic_path
from nlp import pretrained
from nlp.text import UNK, Vocab, read_lines

VOCAB_FILE = "vocab.txt"
CLASSES_FILE = "classes.json"
PAD = pretrained.PAD


# --- config fields ------------------------------------------------------------------------------
def max_len_field(default, unit):
    """`--max-len`: tokens kept per `unit` ("sentence", "review")."""
    return field(default=default, metadata=cli.at_least(1, f"tokens kept per {unit} (longer ones are cut)"))


def min_freq_field(default):
    """`--min-freq`: the vocabulary's frequency threshold."""
    return field(default=default, metadata=cli.at_least(1, "vocabulary: drop training tokens seen fewer times"))


def embeddings_field():
    """`--embeddings PATH`: the initial word vectors (`nlp.pretrained.initial_embeddings`)."""
    return field(default="", metadata={
        "help": "initial word vectors: a GloVe/word2vec text file or glove.6b.50d / glove.6b.100d "
                "('' for random)", "metavar": "PATH"})


def freeze_embeddings_field(default, table="embedding table"):
    """`--freeze-embeddings/--no-freeze-embeddings`: keep the `table` initialised from `--embeddings` fixed."""
    return field(default=default, metadata={"help": f"keep the {table} fixed (only with --embeddings)"})


def val_ratio_field(default, unit):
    """`--val-ratio`: the seeded share of the training `unit` ("pairs", "reviews") for per-epoch validation."""
    return field(default=default, metadata=cli.bounds(
        "[0, 1)", f"share of the training {unit} held out for the per-epoch validation accuracy"))


# --- vocabulary and initial embeddings ----------------------------------------------------------
def save_tokens(run, tokens):
    """Write the token list `tokens` into the run directory as `vocab.txt`, one token a line in
    order (atomically). Only the chief writes: the other multi-worker replicas built the same list.
    `nlp.bert` keeps its WordPiece vocabulary in the same file."""
    if run.chief:
        with atomic_path(run.file(VOCAB_FILE)) as tmp:
            tmp.write_text("".join(f"{t}\n" for t in tokens), encoding="utf-8")


def load_tokens(run_dir, missing="{run_dir} holds no vocab.txt; train into it first", required=()):
    """The token list a run's `vocab.txt` holds, in order; one-line `DlsuiteError` with `missing`
    (formatted with `run_dir` and the file's `path`) when the file is absent, and `DatasetError`
    when it is binary, empty, repeats a token or lacks one of the `required` tokens (a damaged
    vocabulary would silently give the checkpoint's rows to other words)."""
    path = Path(run_dir) / VOCAB_FILE
    if not path.is_file():
        raise DlsuiteError(missing.format(run_dir=run_dir, path=path))
    fix = "restore the run's own vocab.txt or train a new run"
    tokens = read_lines(path, "vocabulary", fix)
    if not tokens:
        raise DatasetError(f"{path} is empty; {fix}")
    counts = collections.Counter(tokens)
    repeated = next((t for t, n in counts.items() if n > 1), None)
    if repeated is not None:
        raise DatasetError(f"{path} lists {repeated!r} {counts[repeated]} times, so it is not a vocabulary train "
                           f"wrote; {fix}")
    absent = [t for t in required if t not in counts]
    if absent:
        raise DatasetError(f"{path} lacks the reserved token(s) {' '.join(absent)}, so it is not a vocabulary "
                           f"train wrote; {fix}")
    return tokens


def save_vocab(run, vocab):
    """Write `vocab` into the run directory as `vocab.txt`, one token a line in index order (`save_tokens`)."""
    save_tokens(run, vocab.idx_to_token)


def save_classes(run, names):
    """Write the class names (index order) into the run directory as `classes.json`, a JSON list, through
    `Run.write_json` (the chief only; on --resume not before the checkpoint is restored, so a failed resume
    leaves the run's file as it was); `evaluate`, `predict` and `export` name the model's outputs by it."""
    run.write_json(CLASSES_FILE, list(names))


def load_vocab(run_dir):
    """The `Vocab` a run saved (`<unk>` first, `<pad>` in it); one-line `DlsuiteError` when its
    `vocab.txt` is missing or damaged (`load_tokens`)."""
    tokens = load_tokens(run_dir, required=(UNK, PAD))
    if tokens[0] != UNK:
        raise DatasetError(f"{Path(run_dir) / VOCAB_FILE} starts with {tokens[0]!r}, not {UNK}, so it is not a "
                           "vocabulary train wrote; restore the run's own vocab.txt or train a new run")
    return Vocab.from_tokens(tokens)


def initial_embeddings(config, vocab):
    """`nlp.pretrained.initial_embeddings(config, vocab)` (None without `--embeddings`), noting on
    stderr in one line how many vocabulary tokens the vectors file has, the OOV count and share,
    and the most frequent OOV tokens."""
    initial = pretrained.initial_embeddings(config, vocab)
    if initial is not None:
        examples = f", e.g. {' '.join(initial.oov_examples[:5])}" if initial.oov_examples else ""
        print(f"embeddings: {initial.known} of {len(vocab) - 2} vocabulary tokens found, {initial.oov} OOV "
              f"({initial.oov_share:.1%} of training tokens){examples}", file=sys.stderr)
    return initial


def embeddings_report(initial):
    """The `embeddings_*` numbers a run's JSON records (`Pretrained.report`); {} without `--embeddings`."""
    return initial.report() if initial is not None else {}


# --- held-back parts ----------------------------------------------------------------------------
def holdout_indices(n, fraction, seed):
    """Disjoint sorted index arrays `(kept, held)` of `range(n)`: `round(fraction * n)` examples held
    back (`common.data.split_indices` on the seed stream `[seed, 15]`, the same on every machine).
    `nlp.snli` holds back its evaluation and validation pairs with it, `nlp.sentiment` its validation reviews."""
    return split_indices(n, fraction, [int(seed), 15])


# --- training, prediction, restoring ----------------------------------------------------------
def compile_classifier(model, lr):
    """Adam + sparse categorical cross-entropy on logits, with accuracy."""
    import keras

    model.compile(keras.optimizers.Adam(lr), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return model


def class_probabilities(model, inputs, batch_size=512):
    """Softmax probabilities `(n, classes)` of the model's logits for encoded inputs (an array or a
    dict of arrays), computed batch by batch outside the distribution strategy (Keras'
    distributed predict/evaluate fail on a last batch that does not split evenly over replicas)."""
    import keras
    import tensorflow as tf

    n = len(tf.nest.flatten(inputs)[0])
    parts = [keras.ops.convert_to_numpy(keras.ops.softmax(model(
        tf.nest.map_structure(lambda a: a[start:start + batch_size], inputs), training=False), axis=-1))
        for start in range(0, n, batch_size)]
    return np.concatenate(parts)


def validation_accuracy(model, inputs, labels):
    """`on_epoch_end` callback for `training.fit` adding `val_accuracy` on encoded `inputs`
    (nothing when there are no validation examples)."""
    if len(labels) == 0:
        return None
    return lambda epoch, logs: {"val_accuracy": round(float(np.mean(
        class_probabilities(model, inputs).argmax(axis=1) == labels)), 4)}


def fit(model, run, config, inputs, labels, val_inputs, val_labels):
    """Train the compiled `model` into `run` for `config.epochs` on encoded `inputs` / `labels`
    (batches of `config.batch_size` in an order seeded by `config.seed` and the epoch), scoring
    `val_inputs` / `val_labels` after each epoch. Returns the last epoch's `loss` and
    `train_accuracy`, and `val_accuracy` when there is a validation part, rounded to 4 places."""
    from common import training

    history = training.fit(model, lambda epoch: epoch_dataset((inputs, labels), config.batch_size, config.seed,
                                                              epoch),
                           run, epochs=config.epochs, on_epoch_end=validation_accuracy(model, val_inputs, val_labels))
    last = history[-1]
    return {"loss": round(last["loss"], 4), "train_accuracy": round(last["accuracy"], 4),
            **({"val_accuracy": round(last["val_accuracy"], 4)} if "val_accuracy" in last else {})}


def restore(ctx, build):
    """The run's trained model, built by `build(config, vocab_size, pad_id)` over the run's
    `vocab.txt` and restored from its newest checkpoint, and that vocabulary."""
    vocab = load_vocab(ctx.run_dir)
    model = build(ctx.config, len(vocab), vocab[PAD])
    ctx.restore(model)
    return model, vocab
