"""Caser (the book's 16.8): convolutional sequence embedding for next-item recommendation.

The user's last L items form an `(L, d)` image. Horizontal filters of every height
1..L (ReLU, max over time) capture union-level patterns, vertical `(L, 1)` filters take
weighted sums of the L embeddings (point-level patterns); both go through a dense layer
to z, and score(u, S, i) = [z, p_u] . w_i + b_i. Trained with BPR on the
sequence-aware split (one negative per target per epoch). Each user's second-to-last
item is held out for validation (ranked every epoch given the L items before it); the
test ranks each user's latest item given their last L earlier items (the validation item
included) against all unobserved items, once at the end of `train` and by `evaluate`.

    python -m recsys.caser train --data-dir PATH/TO/ml-100k
    python -m recsys.caser evaluate        # the newest run, on the data it was trained on
"""
import sys
from dataclasses import dataclass, field

import keras
import numpy as np
from keras import ops

from common import cli
from recsys import data as rdata
from recsys.ranking import (PairwiseRanker, RankingConfig, fit_ranker, pairwise_dataset,
                            protocol_arguments, ranking_report)


@dataclass
class Config(RankingConfig):
    epochs: int = 20
    batch_size: int = 1024
    lr: float = 0.004
    factors: int = field(default=32, metadata=cli.at_least(1, "item/user embedding size d"))
    window: int = field(default=5, metadata=cli.at_least(1, "L, how many previous items the model sees"))
    horizontal: int = field(default=16, metadata=cli.at_least(1, "horizontal filters per height"))
    vertical: int = field(default=4, metadata=cli.at_least(1, "vertical filters"))
    dropout: float = field(default=0.05, metadata=cli.bounds(
        "[0, 1)", "dropout on the convolution features while training"))


DEMO = {"epochs": 4, "factors": 16, "batch_size": 256, "lr": 0.005, "horizontal": 8}


@keras.saving.register_keras_serializable(package="dlsuite")
class Caser(PairwiseRanker):
    """Context = (users `(batch,)`, windows `(batch, L)` of item ids, `num_items` = padding)."""

    def __init__(self, num_users, num_items, factors=32, window=5, horizontal=16, vertical=4, dropout=0.05,
                 loss="bpr", **kwargs):
        super().__init__(loss=loss, **kwargs)
        self.num_users, self.num_items, self.factors, self.window = num_users, num_items, factors, window
        self.horizontal, self.vertical, self.dropout = horizontal, vertical, dropout
        # one initializer per table: a shared one holds one fixed seed and would give tables of
        # the same shape identical starting values
        init = lambda: keras.initializers.RandomNormal(stddev=0.05)  # noqa: E731
        self.item_embedding = keras.layers.Embedding(num_items + 1, factors, embeddings_initializer=init())
        self.user_embedding = keras.layers.Embedding(num_users, factors, embeddings_initializer=init())
        self.vertical_filters = self.add_weight(shape=(vertical, window), initializer="glorot_uniform",
                                                name="vertical_filters")
        self.horizontal_convs = [keras.layers.Conv1D(horizontal, h, activation="relu") for h in range(1, window + 1)]
        self.drop = keras.layers.Dropout(dropout)
        self.fc = keras.layers.Dense(factors, activation="relu")
        self.out_weight = keras.layers.Embedding(num_items, 2 * factors, embeddings_initializer=init())
        self.out_bias = keras.layers.Embedding(num_items, 1, embeddings_initializer="zeros")

    def user_state(self, context, training=False):
        """`(batch, 2 d)`: [z(window), p_u]."""
        users, windows = context
        e = self.item_embedding(windows)  # (batch, L, d)
        out_v = ops.reshape(ops.einsum("bld,fl->bfd", e, self.vertical_filters), (-1, self.vertical * self.factors))
        out_h = [ops.max(conv(e), axis=1) for conv in self.horizontal_convs]
        z = self.fc(self.drop(ops.concatenate([out_v, *out_h], axis=-1), training=training))
        return ops.concatenate([z, self.user_embedding(users)], axis=-1)

    def score(self, context, items, training=False):
        state = self.user_state(context, training)
        return ops.sum(state * self.out_weight(items), axis=-1) + self.out_bias(items)[:, 0]

    def score_all(self, context):
        state = self.user_state(context)
        return ops.matmul(state, ops.transpose(self.out_weight.embeddings)) + self.out_bias.embeddings[:, 0]

    def get_config(self):
        return {**super().get_config(), "num_users": self.num_users, "num_items": self.num_items,
                "factors": self.factors, "window": self.window, "horizontal": self.horizontal,
                "vertical": self.vertical, "dropout": self.dropout}


def build(config, num_users, num_items):
    model = Caser(num_users, num_items, config.factors, config.window, config.horizontal, config.vertical,
                  config.dropout, config.loss)
    model.compile(keras.optimizers.Adam(config.lr))
    model(((np.zeros(1, np.int32), np.zeros((1, config.window), np.int32)), np.zeros(1, np.int32)))
    return model


def _load(ctx):
    return rdata.load_splits(ctx.data_dir, ctx.demo, "seq-aware", dataset=ctx.config.dataset)


def report(model, known, heldout, config):
    """HR@k, NDCG@k and AUC of the held-out items given each user's last L `known` items (`ranking_report`
    under the config's protocol)."""
    windows = rdata.latest_windows(known, np.arange(known.num_users), config.window, known.num_items)
    return ranking_report(lambda users: model.score_all((np.asarray(users, np.int32), windows[users])),
                          known, heldout, config.top_k, config.sampled_negatives(), config.seed)


def train(ctx):
    cfg = ctx.config
    splits = _load(ctx)
    fit = splits.fit
    with ctx.strategy.scope():
        model = build(cfg, fit.num_users, fit.num_items)
    index = rdata.UserItemIndex.of(fit)
    users, windows, targets = rdata.sequence_windows(fit, cfg.window, fit.num_items)

    def dataset(epoch):
        return pairwise_dataset((users, windows), users, targets, index, cfg.batch_size, cfg.seed, epoch)

    return fit_ranker(ctx, model, dataset, lambda m, known, heldout: report(m, known, heldout, cfg), splits)


def restore(ctx, num_users, num_items):
    """The run's model (newest checkpoint)."""
    model = build(ctx.config, num_users, num_items)
    ctx.restore(model)
    return model


def evaluate(ctx):
    splits = _load(ctx)
    model = restore(ctx, splits.train.num_users, splits.train.num_items)
    cfg = ctx.config
    return {**report(model, splits.train, splits.test, cfg), "protocol": cfg.protocol}


COMMANDS = {
    "train": cli.Command(train, "train Caser on the sequence-aware split (implicit feedback)", trains=True),
    "evaluate": cli.Command(evaluate, "HR@k, NDCG@k and AUC of a trained run", add_arguments=protocol_arguments),
}


def main(argv=None):
    return cli.main("Caser on MovieLens (sequence-aware recommendation)", Config, COMMANDS,
                    demo=DEMO, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
