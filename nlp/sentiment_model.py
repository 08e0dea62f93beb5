"""Sentiment analysis's models, training and evaluation (`nlp.sentiment` is the command and its
`Config`): the bidirectional LSTM and the TextCNN.
"""
import keras
import numpy as np
from keras import ops

from common.errors import DatasetError, UsageError
from nlp import classify, imdb, text_tables
from nlp.classify import PAD, class_probabilities, compile_classifier, holdout_indices
from nlp.text import Vocab, coverage, encode_padded, warn_no_basis


@keras.saving.register_keras_serializable(package="dlsuite")
class BiRNN(keras.Model):
    """Token ids `(b, t)` (`pad_id` pads on the right) -> logits `(b, num_classes)`: stacked bidirectional
    LSTMs over the masked sequence; the top outputs at the first and last real token,
    concatenated `(b, 4 * hidden)`, go through a linear layer."""

    def __init__(self, vocab_size, embedding_dim=50, hidden=100, layers=2, pad_id=1, freeze_embeddings=False,
                 num_classes=2, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.embedding_dim, self.hidden, self.num_layers = vocab_size, embedding_dim, hidden, layers
        self.pad_id, self.freeze_embeddings, self.num_classes = pad_id, freeze_embeddings, num_classes
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
        self.embedding.trainable = not freeze_embeddings
        self.encoder = [keras.layers.Bidirectional(keras.layers.LSTM(hidden, return_sequences=True), name=f"lstm_{i}")
                        for i in range(layers)]
        self.decoder = keras.layers.Dense(num_classes, name="decoder")

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
                "freeze_embeddings": self.freeze_embeddings, "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package="dlsuite")
class TextCNN(keras.Model):
    """Token ids `(b, t)` -> logits `(b, num_classes)`: embeddings (with `two_tables`, a trained table and a
    fixed one, concatenated), a ReLU `Conv1D` per kernel width, max over time, concatenation,
    dropout and a linear layer."""

    def __init__(self, vocab_size, embedding_dim=50, kernel_sizes=(3, 4, 5), channels=(100, 100, 100), dropout=0.5,
                 two_tables=False, freeze_embeddings=False, num_classes=2, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.embedding_dim, self.dropout = vocab_size, embedding_dim, dropout
        self.kernel_sizes, self.channels = tuple(kernel_sizes), tuple(channels)
        self.two_tables, self.freeze_embeddings, self.num_classes = two_tables, freeze_embeddings, num_classes
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
        self.embedding.trainable = not freeze_embeddings
        if two_tables:
            self.constant_embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="constant_embedding")
            self.constant_embedding.trainable = False
        self.convs = [keras.layers.Conv1D(c, k, activation="relu", name=f"conv_{k}")
                      for k, c in zip(self.kernel_sizes, self.channels)]
        self.drop = keras.layers.Dropout(dropout)
        self.decoder = keras.layers.Dense(num_classes, name="decoder")

    def call(self, ids, training=False):
        x = self.embedding(ids)
        if self.two_tables:
            x = ops.concatenate([x, self.constant_embedding(ids)], axis=-1)
        pooled = ops.concatenate([ops.max(conv(x), axis=1) for conv in self.convs], axis=-1)
        return self.decoder(self.drop(pooled, training=training))

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "embedding_dim": self.embedding_dim,
                "kernel_sizes": self.kernel_sizes, "channels": self.channels, "dropout": self.dropout,
                "two_tables": self.two_tables, "freeze_embeddings": self.freeze_embeddings,
                "num_classes": self.num_classes}


def build(config, vocab_size, pad_id, initial=None, num_classes=2):
    """The compiled, built model of `config.model` with `num_classes` outputs; `initial` (a
    `pretrained.Pretrained`) fills its embedding table(s)."""
    frozen = config.freeze_embeddings and bool(config.embeddings)
    if config.model == "birnn":
        model = BiRNN(vocab_size, config.embedding_dim, config.hidden, config.layers, pad_id, frozen, num_classes)
    else:
        model = TextCNN(vocab_size, config.embedding_dim, config.kernel_sizes, config.channels, config.dropout,
                        two_tables=bool(config.embeddings), freeze_embeddings=frozen, num_classes=num_classes)
    model(np.full((1, max(config.kernel_sizes)), pad_id, np.int32))
    if initial is not None:
        model.embedding.embeddings.assign(initial.matrix)
        if getattr(model, "two_tables", False):
            model.constant_embedding.embeddings.assign(initial.matrix)
    return compile_classifier(model, config.lr)


def labelled_reviews(ctx, splits=("train", "test"), names=None):
    """The `Reviews` of each of `splits` and the class names (index order) from the command's source:
    `--tfds imdb_reviews`, a table (`nlp.text_tables`), class folders (aclImdb's layout), or the demo.
    `names`: a trained run's classes (the labels are indexed by them); None takes them from the data."""
    if ctx.tfds is not None:
        names = names or list(imdb.LABELS)
        return [_tfds_reviews(ctx.tfds_examples(split)) for split in splits], names
    if ctx.data_dir is not None and text_tables.detect_format(ctx.data_dir, ctx.config.format) == "table":
        files = text_tables.split_files(ctx.data_dir)
        text, label = text_tables.parse_columns(ctx.config.columns)
        read = {}
        for split in dict.fromkeys(("train", *splits) if names is None else splits):
            if split not in files:
                raise DatasetError(f"{ctx.data_dir} has no {split}.csv, {split}.tsv or {split}.jsonl; the table "
                                   "layout needs train and test tables")
            read[split] = (files[split], *text_tables.read_table(files[split], (text, label)))
        if names is None:
            names = text_tables.class_names(read["train"][1][label], read["train"][0])
        return [imdb.Reviews(_tokens(read[s][1][text], read[s][0], read[s][2]), text_tables.label_indices(
            read[s][1][label], names, read[s][0], read[s][2])) for s in splits], names
    directory = imdb.imdb_directory(ctx.data_dir, ctx.demo)
    folders = imdb.class_folders(directory)
    if names is not None and imdb.class_names(folders) != list(names):
        raise DatasetError(f"{directory}'s classes ({', '.join(folders)}) are not the run's ({', '.join(names)})")
    return [imdb.read_imdb(directory, split, folders) for split in splits], imdb.class_names(folders)


def _tfds_reviews(examples):
    """`Reviews` of TFDS `imdb_reviews` examples (`text` bytes, `label` 0 negative / 1 positive)."""
    examples = list(examples)
    return imdb.Reviews([imdb.tokenize_review(e["text"].decode("utf-8")) for e in examples],
                        np.asarray([e["label"] for e in examples], np.int32).reshape(-1))


def _tokens(texts, path, rows):
    """`tokenize_review` of each table text; a text without words is a `DatasetError` naming its row."""
    tokens = [imdb.tokenize_review(t) for t in texts]
    empty = next((i for i, t in enumerate(tokens) if not t), None)
    if empty is not None:
        raise DatasetError(f"{path} {rows[empty]}: the text holds no words; remove the row or fill it")
    return tokens


def train(ctx):
    cfg = ctx.config
    (reviews, test), names = labelled_reviews(ctx)  # a damaged test review stops the run before it trains
    fit_idx, val_idx = holdout_indices(len(reviews), cfg.val_ratio, cfg.seed)
    fit, val = reviews.subset(fit_idx), reviews.subset(val_idx)
    vocab = Vocab(fit.tokens, min_freq=cfg.min_freq, reserved_tokens=[PAD])
    initial = classify.initial_embeddings(cfg, vocab)
    with ctx.strategy.scope():
        model = build(cfg, len(vocab), vocab[PAD], initial, len(names))
    run = ctx.run()
    classify.save_vocab(run, vocab)
    classify.save_classes(run, names)
    pad = vocab[PAD]
    fitted = classify.fit(model, run, cfg, encode_padded(vocab, fit.tokens, cfg.max_len, pad), fit.labels,
                          encode_padded(vocab, val.tokens, cfg.max_len, pad), val.labels)
    return {**fitted, "accuracy": test_accuracy(model, vocab, test, cfg.max_len), "test_reviews": len(test),
            "train_reviews": len(fit), "vocabulary": len(vocab), **classify.embeddings_report(initial)}


def test_accuracy(model, vocab, reviews, max_len):
    """Accuracy of the model's argmax labels on `reviews`."""
    probabilities = class_probabilities(model, encode_padded(vocab, reviews.tokens, max_len, vocab[PAD]), 256)
    return round(float(np.mean(probabilities.argmax(axis=1) == reviews.labels)), 4)


def classes(run_dir):
    """The class names of a run: its `classes.json`, or IMDb's negative/positive for a run from before it."""
    from nlp import serving

    return serving.class_names(run_dir, imdb.LABELS)


def restore(ctx):
    """The trained model of the run and its vocabulary."""
    count = len(classes(ctx.run_dir))
    return classify.restore(ctx, lambda config, vocab_size, pad_id: build(config, vocab_size, pad_id,
                                                                           num_classes=count))


def evaluate(ctx):
    (test,), _ = labelled_reviews(ctx, ("test",), classes(ctx.run_dir))
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
    label, names = int(np.argmax(p)), classes(ctx.run_dir)
    shares = ({"positive_probability": round(float(p[1]), 4)} if names == list(imdb.LABELS)
              else {"probabilities": {n: round(float(v), 4) for n, v in zip(names, p)}})
    return {"label": names[label], "probability": round(float(p[label]), 4), **shares, **known}


def export(ctx):
    """Write the run's classifier as a SavedModel reading raw reviews (`nlp.serving.export_classifier`):
    input `text`, outputs `probabilities` (one column per class), `label`, `words`, `unknown_words`."""
    from nlp import serving

    serving.saved_model_only(ctx)
    model, vocab = restore(ctx)
    return serving.export_classifier(ctx, model, model.decoder.units, vocab.idx_to_token, ("text",),
                                     serving.review_tokens, classes(ctx.run_dir), {"text": "a great movie, i loved it"})
