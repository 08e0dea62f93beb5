"""Caser's model, training and evaluation (`recsys.caser` is its command and configuration).

The model and everything that needs TensorFlow live here, so `python -m recsys.caser --help` and a
usage error answer without loading it.
"""
import keras
import numpy as np
from keras import ops

from recsys.implicit import UserItemIndex, latest_windows, sequence_windows
from recsys.movielens import recommend
from recsys.ranking import pairwise_dataset, ranking_report
from recsys.ranking_model import PairwiseRanker, fit_ranker
from recsys.splits import load_splits
from recsys.tables import interaction_source


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
    return load_splits(ctx.data_dir, ctx.demo, "seq-aware", **interaction_source(ctx))


def report(model, known, heldout, config):
    """HR@k, NDCG@k and AUC of the held-out items given each user's last L `known` items (`ranking_report`
    under the config's protocol)."""
    windows = latest_windows(known, np.arange(known.num_users), config.window, known.num_items)
    return ranking_report(lambda users: model.score_all((np.asarray(users, np.int32), windows[users])),
                          known, heldout, config.top_k, config.sampled_negatives(), config.seed)


def train(ctx):
    cfg = ctx.config
    splits = _load(ctx)
    fit = splits.fit
    with ctx.strategy.scope():
        model = build(cfg, fit.num_users, fit.num_items)
    index = UserItemIndex.of(fit)
    users, windows, targets = sequence_windows(fit, cfg.window, fit.num_items)

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


def predict(ctx):
    """The `--top` items with the highest scores for one user given their last L training items, among the
    items the user has no training interaction with (ids as in the ratings file)."""
    train_set = _load(ctx).train

    def scores_of(user):
        users = np.array([user], np.int32)
        window = latest_windows(train_set, users, ctx.config.window, train_set.num_items)
        return restore(ctx, train_set.num_users, train_set.num_items).score_all((users, window))[0]

    return recommend(ctx, train_set, scores_of)


def export(ctx):
    """A SavedModel of the run (`recsys.serving.export_top_k`): a user id of the data in, the `--k` items with
    the highest scores given the user's last `--window` training items (held in the SavedModel) among those
    the user has no training interaction with out (as `predict`)."""
    import tensorflow as tf

    from recsys import serving

    serving.check_export(ctx)
    train_set = _load(ctx).train
    model = restore(ctx, train_set.num_users, train_set.num_items)
    windows = tf.Variable(latest_windows(train_set, np.arange(train_set.num_users), ctx.config.window,
                                         train_set.num_items), trainable=False, name="latest_windows")
    return serving.export_top_k(ctx, model, train_set,
                                lambda users: model.score_all((users, tf.gather(windows, users))), tracked=[windows])
