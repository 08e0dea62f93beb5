"""Sentiment analysis on IMDb reviews (the book's 15.2-15.3): a bidirectional LSTM or a TextCNN.

`--model birnn`: the book's two-layer bidirectional LSTM; a review is encoded as the
concatenation of the top layer's outputs at its first and its last real token (padding is
masked, so both directions read only the review), followed by a linear layer to the two
labels. `--model textcnn`: the book's TextCNN; with `--embeddings` it looks every token up in
two tables initialised from the vectors file, one trained and one kept fixed, concatenates
them, and runs 1-D convolutions of several widths (`--kernel-sizes 3,4,5`, `--channels`
each) with max-over-time pooling, dropout and a linear layer.

Embeddings start from a vectors file in GloVe text format as in `nlp.nli` (`--embeddings
PATH`, frozen with `--freeze-embeddings`); OOV tokens are counted and reported. A seeded
`--val-ratio` of the training reviews is held back for the per-epoch validation accuracy;
the test split is scored once at the end of `train` and by `evaluate`.

    python -m nlp.sentiment train --data-dir ../shared/data/aclImdb_subset \\
        --embeddings ../shared/data/glove.6b.50d_top20k/vec.txt --model textcnn
    python -m nlp.sentiment evaluate
    python -m nlp.sentiment predict "a great movie, i loved it"
    python -m nlp.sentiment train --demo
"""
import sys
from dataclasses import dataclass, field

import keras
import numpy as np
from keras import ops

from common import cli
from common.errors import UsageError
from nlp import classify, imdb
from nlp.classify import PAD, class_probabilities, compile_classifier, holdout_indices
from nlp.text import Vocab, coverage, encode_padded, warn_no_basis


@dataclass
class Config(cli.TrainConfig):
    epochs: int = 10  # measured for the default TextCNN; the BiRNN reaches its result in 5 (docs/nlp.md)
    batch_size: int = 64
    lr: float = 0.001
    model: str = field(default="textcnn", metadata={
        "choices": ["birnn", "textcnn"], "help": "two-layer bidirectional LSTM, or TextCNN"})
    embedding_dim: int = field(default=50, metadata=cli.at_least(1, "word vector dimension"))
    hidden: int = field(default=100, metadata=cli.at_least(1, "LSTM units per direction (birnn)"))
    layers: int = field(default=2, metadata=cli.at_least(1, "stacked bidirectional LSTM layers (birnn)"))
    kernel_sizes: tuple = field(default=(3, 4, 5), metadata=cli.int_list("convolution widths (textcnn)"))
    channels: tuple = field(default=(100, 100, 100), metadata=cli.int_list(
        "output channels of each convolution width (textcnn)"))
    dropout: float = field(default=0.5, metadata=cli.bounds("[0, 1)", "dropout rate (textcnn)"))
    max_len: int = classify.max_len_field(500, "review")
    min_freq: int = classify.min_freq_field(5)
    embeddings: str = classify.embeddings_field()
    freeze_embeddings: bool = classify.freeze_embeddings_field(False, "(trained) embedding table")
    val_ratio: float = classify.val_ratio_field(0.1, "reviews")

    def validate(self):
        super().validate()
        if self.model == "textcnn" and len(self.kernel_sizes) != len(self.channels):
            raise UsageError(f"--kernel-sizes has {len(self.kernel_sizes)} widths but --channels has "
                             f"{len(self.channels)} counts; give one count per width")


DEMO = {"epochs": 4, "embedding_dim": 32, "hidden": 32, "channels": (32, 32, 32), "max_len": 128,
        "min_freq": 1}
_BOOK = {"embedding_dim": 100, "max_len": 500, "min_freq": 5, "batch_size": 64, "epochs": 5,
         "embeddings": "glove.6b.100d"}
PRESETS = {"book": {**_BOOK, "model": "birnn", "hidden": 100, "layers": 2, "lr": 0.01},
           "book-textcnn": {**_BOOK, "model": "textcnn", "kernel_sizes": (3, 4, 5), "channels": (100, 100, 100),
                            "dropout": 0.5, "lr": 0.001}}


@keras.saving.register_keras_serializable(package="dlsuite")
class BiRNN(keras.Model):
    """Token ids `(b, t)` (`pad_id` pads on the right) -> logits `(b, 2)`: stacked bidirectional
    LSTMs over the masked sequence; the top outputs at the first and last real token,
    concatenated `(b, 4 * hidden)`, go through a linear layer."""

    def __init__(self, vocab_size, embedding_dim=50, hidden=100, layers=2, pad_id=1, freeze_embeddings=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.embedding_dim, self.hidden, self.num_layers = vocab_size, embedding_dim, hidden, layers
        self.pad_id, self.freeze_embeddings = pad_id, freeze_embeddings
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
        self.embedding.trainable = not freeze_embeddings
        self.encoder = [keras.layers.Bidirectional(keras.layers.LSTM(hidden, return_sequences=True), name=f"lstm_{i}")
                        for i in range(layers)]
        self.decoder = keras.layers.Dense(2, name="decoder")

    def call(self, ids, training=False):
        mask = ops.not_equal(ids, self.pad_id)
        x = self.embedding(ids)
        for layer in self.encoder:
            x = layer(x, mask=mask, training=training)
        last = ops.maximum(ops.sum(ops.cast(mask, "int32"), axis=1) - 1, 0)
        at_last = ops.take_along_axis(x, last[:, None, None], axis=1)[:, 0]
        return self.decoder(ops.concatenate([x[:, 0], at_last], axis=-1))

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "embedding_dim": self.embedding_dim,
                "hidden": self.hidden, "layers": self.num_layers, "pad_id": self.pad_id,
                "freeze_embeddings": self.freeze_embeddings}


@keras.saving.register_keras_serializable(package="dlsuite")
class TextCNN(keras.Model):
    """Token ids `(b, t)` -> logits `(b, 2)`: embeddings (with `two_tables`, a trained table and a
    fixed one, concatenated), a ReLU `Conv1D` per kernel width, max over time, concatenation,
    dropout and a linear layer."""

    def __init__(self, vocab_size, embedding_dim=50, kernel_sizes=(3, 4, 5), channels=(100, 100, 100), dropout=0.5,
                 two_tables=False, freeze_embeddings=False, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.embedding_dim, self.dropout = vocab_size, embedding_dim, dropout
        self.kernel_sizes, self.channels = tuple(kernel_sizes), tuple(channels)
        self.two_tables, self.freeze_embeddings = two_tables, freeze_embeddings
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
        self.embedding.trainable = not freeze_embeddings
        if two_tables:
            self.constant_embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="constant_embedding")
            self.constant_embedding.trainable = False
        self.convs = [keras.layers.Conv1D(c, k, activation="relu", name=f"conv_{k}")
                      for k, c in zip(self.kernel_sizes, self.channels)]
        self.drop = keras.layers.Dropout(dropout)
        self.decoder = keras.layers.Dense(2, name="decoder")

    def call(self, ids, training=False):
        x = self.embedding(ids)
        if self.two_tables:
            x = ops.concatenate([x, self.constant_embedding(ids)], axis=-1)
        pooled = ops.concatenate([ops.max(conv(x), axis=1) for conv in self.convs], axis=-1)
        return self.decoder(self.drop(pooled, training=training))

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "embedding_dim": self.embedding_dim,
                "kernel_sizes": self.kernel_sizes, "channels": self.channels, "dropout": self.dropout,
                "two_tables": self.two_tables, "freeze_embeddings": self.freeze_embeddings}


def build(config, vocab_size, pad_id, initial=None):
    """The compiled, built model of `config.model`; `initial` (a `pretrained.Pretrained`) fills its
    embedding table(s)."""
    frozen = config.freeze_embeddings and bool(config.embeddings)
    if config.model == "birnn":
        model = BiRNN(vocab_size, config.embedding_dim, config.hidden, config.layers, pad_id, frozen)
    else:
        model = TextCNN(vocab_size, config.embedding_dim, config.kernel_sizes, config.channels, config.dropout,
                        two_tables=bool(config.embeddings), freeze_embeddings=frozen)
    model(np.full((1, max(config.kernel_sizes)), pad_id, np.int32))
    if initial is not None:
        model.embedding.embeddings.assign(initial.matrix)
        if getattr(model, "two_tables", False):
            model.constant_embedding.embeddings.assign(initial.matrix)
    return compile_classifier(model, config.lr)


def _data(ctx):
    directory = imdb.imdb_directory(ctx.data_dir, ctx.demo)
    return directory, imdb.read_imdb(directory, "train")


def train(ctx):
    cfg = ctx.config
    directory, reviews = _data(ctx)
    test = imdb.read_imdb(directory, "test")  # a damaged test review stops the run before it trains
    fit_idx, val_idx = holdout_indices(len(reviews), cfg.val_ratio, cfg.seed)
    fit, val = reviews.subset(fit_idx), reviews.subset(val_idx)
    vocab = Vocab(fit.tokens, min_freq=cfg.min_freq, reserved_tokens=[PAD])
    initial = classify.initial_embeddings(cfg, vocab)
    with ctx.strategy.scope():
        model = build(cfg, len(vocab), vocab[PAD], initial)
    run = ctx.run()
    classify.save_vocab(run, vocab)
    pad = vocab[PAD]
    fitted = classify.fit(model, run, cfg, encode_padded(vocab, fit.tokens, cfg.max_len, pad), fit.labels,
                          encode_padded(vocab, val.tokens, cfg.max_len, pad), val.labels)
    return {**fitted, "accuracy": test_accuracy(model, vocab, test, cfg.max_len), "test_reviews": len(test),
            "train_reviews": len(fit), "vocabulary": len(vocab), **classify.embeddings_report(initial)}


def test_accuracy(model, vocab, reviews, max_len):
    """Accuracy of the model's argmax labels on `reviews`."""
    probabilities = class_probabilities(model, encode_padded(vocab, reviews.tokens, max_len, vocab[PAD]), 256)
    return round(float(np.mean(probabilities.argmax(axis=1) == reviews.labels)), 4)


def restore(ctx):
    """The trained model of the run and its vocabulary."""
    return classify.restore(ctx, build)


def evaluate(ctx):
    directory = imdb.imdb_directory(ctx.data_dir, ctx.demo)
    test = imdb.read_imdb(directory, "test")
    model, vocab = restore(ctx)
    return {"accuracy": test_accuracy(model, vocab, test, ctx.config.max_len), "test_reviews": len(test)}


def predict(ctx):
    """The label and probability of one review, with the vocabulary's coverage of the words the model
    reads (`words`, `unknown_words`, `known_fraction`; one warning line on stderr when it knows none)."""
    tokens = imdb.tokenize_review(ctx.args.text)
    if not tokens:
        raise UsageError("the text holds no words")
    model, vocab = restore(ctx)
    p = class_probabilities(model, encode_padded(vocab, [tokens], ctx.config.max_len, vocab[PAD]))[0]
    known = coverage(vocab, tokens[:ctx.config.max_len])
    if known["unknown_words"] == known["words"]:
        warn_no_basis("the review", known["words"], len(vocab))
    label = int(np.argmax(p))
    return {"label": imdb.LABELS[label], "probability": round(float(p[label]), 4),
            "positive_probability": round(float(p[1]), 4), **known}


def _predict_arguments(parser):
    parser.add_argument("text", help="the review to classify")


COMMANDS = {
    "train": cli.Command(train, "train a sentiment classifier (BiRNN or TextCNN) on IMDb reviews", trains=True),
    "evaluate": cli.Command(evaluate, "test accuracy of a trained run"),
    "predict": cli.Command(predict, "label and probability of one review", add_arguments=_predict_arguments),
}


def main(argv=None):
    return cli.main("Sentiment analysis on IMDb: bidirectional LSTM or TextCNN", Config, COMMANDS, demo=DEMO,
                    argv=argv, presets=PRESETS)


if __name__ == "__main__":
    sys.exit(main())
