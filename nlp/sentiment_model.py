"""Sentiment analysis's models, training and evaluation (`nlp.sentiment` is the command and its
`Config`): the bidirectional LSTM and the TextCNN.
"""
import keras
import numpy as np
from keras import ops

from common.errors import UsageError
from nlp import classify, imdb
from nlp.classify import PAD, class_probabilities, compile_classifier, holdout_indices
from nlp.text import Vocab, coverage, encode_padded, warn_no_basis


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

