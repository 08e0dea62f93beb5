"""Matrix factorization's model, training and evaluation (`recsys.mf` is its command and configuration).

The model and everything that needs TensorFlow live here, so `python -m recsys.mf --help` and a usage
error answer without loading it.
"""
import dataclasses
import sys

import keras
import numpy as np
import tensorflow as tf
from keras import ops
from sklearn.metrics import root_mean_squared_error

from common import training
from common.data import epoch_dataset, group_members
from common.distribute import sparse_step_xla, sparse_steps_per_execution
from common.models import ScaledLossModel
from recsys.lazy_adam import LazyAdam
from recsys.movielens import RATING_SCALE, recommend, save_id_maps
from recsys.splits import load_splits
from recsys.tables import interaction_source


@keras.saving.register_keras_serializable(package="dlsuite")
class FactorsThenZero(keras.initializers.Initializer):
    """Normal(0, `stddev`) in every column but the last, which starts at 0: a factor table `(rows, factors + 1)`
    whose last column is the bias (`MatrixFactorization(fused_biases=True)`)."""

    def __init__(self, stddev=0.01, seed=None):
        self.stddev, self.seed = stddev, seed
        self.normal = keras.initializers.RandomNormal(stddev=stddev, seed=seed)

    def __call__(self, shape, dtype=None):
        factors = self.normal((*shape[:-1], shape[-1] - 1), dtype)
        return ops.concatenate([factors, ops.zeros((*shape[:-1], 1), dtype=factors.dtype)], axis=-1)

    def get_config(self):
        return {"stddev": self.stddev, "seed": self.seed}


@keras.saving.register_keras_serializable(package="dlsuite")
class MatrixFactorization(ScaledLossModel):
    """r(u, i) = p_u . q_i + b_u + b_i + mu for inputs (users `(batch,)`, items `(batch,)`) -> `(batch,)`.

    `dense_gradients` (see `common.models.ScaledLossModel`): True for the textbook Adam, False to hand
    the optimizer the embeddings' `IndexedSlices` (what `recsys.lazy_adam.LazyAdam` and sgd need).
    `per_rating`: the step differentiates the batch's sum, not its mean (see `objective`).
    `fused_biases`: two tables, `(users, factors + 1)` and `(items, factors + 1)`, whose last column is the
    bias, instead of four; a step then scatters into two tables, not four (sgd: 1.0-1.2 -> 0.83-0.93 s an
    epoch of 1.8M ratings; XLA's scatter costs per row more than per number)."""

    def __init__(self, num_users, num_items, factors=64, weight_decay=0.0, global_mean=0.0, dense_gradients=True,
                 per_rating=False, init_scale=0.01, fused_biases=False, **kwargs):
        super().__init__(**kwargs)
        self.dense_gradients, self.per_rating, self.init_scale = dense_gradients, per_rating, init_scale
        self.fused_biases = fused_biases
        self.num_users, self.num_items, self.factors = num_users, num_items, factors
        self.weight_decay, self.global_mean = weight_decay, global_mean
        # one initializer per table: a shared one holds one fixed seed and would give tables of
        # the same shape identical starting values
        if fused_biases:
            self.user_table = keras.layers.Embedding(num_users, factors + 1,
                                                     embeddings_initializer=FactorsThenZero(init_scale))
            self.item_table = keras.layers.Embedding(num_items, factors + 1,
                                                     embeddings_initializer=FactorsThenZero(init_scale))
            return
        init = lambda: keras.initializers.RandomNormal(stddev=init_scale)  # noqa: E731
        self.user_factors = keras.layers.Embedding(num_users, factors, embeddings_initializer=init())
        self.item_factors = keras.layers.Embedding(num_items, factors, embeddings_initializer=init())
        self.user_bias = keras.layers.Embedding(num_users, 1, embeddings_initializer="zeros")
        self.item_bias = keras.layers.Embedding(num_items, 1, embeddings_initializer="zeros")

    @property
    def tables(self):
        """The embedding layers, in variable order."""
        if self.fused_biases:
            return self.user_table, self.item_table
        return self.user_factors, self.item_factors, self.user_bias, self.item_bias

    def build(self, input_shape=None):
        """Create the tables (what loading a saved model.keras calls; `lookup` bypasses the layers' `__call__`)."""
        for layer in self.tables:
            if not layer.built:
                layer.build()
        super().build(input_shape)

    def lookup(self, users, items):
        """(p_u, q_i, b_u, b_i) of the batch, `(batch, factors)` twice then `(batch,)` twice. Each row is read with
        `tf.gather` on the variable (a sparse `ResourceGather`): `keras.layers.Embedding` first reads the whole table,
        which after `LazyAdam`'s scatters (TensorFlow's copy-on-read mode) copies all of it every step."""
        def rows(layer, ids):
            return tf.gather(layer.embeddings.value, ids)

        if self.fused_biases:
            user, item = rows(self.user_table, users), rows(self.item_table, items)
            return user[:, :-1], item[:, :-1], user[:, -1], item[:, -1]
        return (rows(self.user_factors, users), rows(self.item_factors, items), rows(self.user_bias, users)[:, 0],
                rows(self.item_bias, items)[:, 0])

    def score(self, p, q, user_bias, item_bias):
        return ops.sum(p * q, axis=-1) + user_bias + item_bias + self.global_mean

    def call(self, inputs, training=False):
        return self.score(*self.lookup(*inputs))

    def training_loss(self, batch):
        """Mean squared error + weight_decay x mean squared norm of the batch's factors and biases (each row
        looked up once, so an `IndexedSlices` gradient holds each lookup once)."""
        (users, items), ratings = batch
        p, q, user_bias, item_bias = looked_up = self.lookup(users, items)
        loss = ops.mean(ops.square(self.score(*looked_up) - ratings))
        if self.weight_decay:
            norms = ops.sum(p * p, axis=-1) + ops.sum(q * q, axis=-1) + user_bias * user_bias + item_bias * item_bias
            loss = loss + self.weight_decay * ops.mean(norms)
        return loss

    def objective(self, loss, batch):
        """`per_rating`: the sum of the replica's per-rating losses, so plain SGD moves each looked-up row by
        lr x its own rating's gradient (Funk's and Surprise's per-rating SGD, a batch at once; the replicas'
        sums add up to the global batch's). Otherwise the replica-scaled mean (`ScaledLossModel`)."""
        if not self.per_rating:
            return super().objective(loss, batch)
        return loss * tf.cast(tf.shape(batch[1])[0], loss.dtype)

    def get_config(self):
        return {**super().get_config(), "num_users": self.num_users, "num_items": self.num_items,
                "factors": self.factors, "weight_decay": self.weight_decay, "global_mean": self.global_mean,
                "dense_gradients": self.dense_gradients, "per_rating": self.per_rating,
                "init_scale": self.init_scale, "fused_biases": self.fused_biases}


def build(config, num_users, num_items, global_mean):
    """The model for `config`, compiled with its `--optimizer`: `adam` on dense gradients, `lazy_adam` on the
    embeddings' `IndexedSlices` (no XLA: `tf.unique` has a data-dependent shape), or `sgd` on the fused tables'
    `IndexedSlices` of the summed loss (XLA and 32 steps per execution on one replica only, see
    `common.distribute.sparse_step_xla`)."""
    lazy, sgd = config.optimizer == "lazy_adam", config.optimizer == "sgd"
    model = MatrixFactorization(num_users, num_items, config.factors, config.weight_decay, global_mean,
                                dense_gradients=not (lazy or sgd), per_rating=sgd, init_scale=config.init_scale,
                                fused_biases=sgd)
    if lazy:
        model.compile(LazyAdam(config.lr), jit_compile=False)
    elif sgd:
        model.compile(keras.optimizers.SGD(config.lr), jit_compile=sparse_step_xla(),
                      steps_per_execution=sparse_steps_per_execution())
    else:
        model.compile(keras.optimizers.Adam(config.lr))
    model((np.zeros(1, np.int32), np.zeros(1, np.int32)))
    return model


# sgd's cache-blocked shuffle (`user_blocks`): used when the user table is larger than BLOCKED_TABLE_BYTES
# (a smaller one stays cached with the item table: ML-100K, ML-1M), in blocks of users whose rows fill
# BLOCK_BYTES (one core's L2 cache); a user whose ratings would appear more than BLOCK_REPEATS times in a
# batch of their block is spread over the blocks
BLOCKED_TABLE_BYTES = 8 << 20
BLOCK_BYTES = 1 << 20
BLOCK_REPEATS = 8


def user_blocks(part, config):
    """The rating indices of each block of `part` (`common.data.group_members`, what `epoch_dataset(groups=...)`
    takes) for sgd's cache-blocked shuffle, or None for the plain shuffle (a user table of at most
    `BLOCKED_TABLE_BYTES`: ML-100K, ML-1M; or another optimizer).

    A step reads and scatters one user row and one item row per rating; with ML-25M's 162k users the user table
    (33 MB) misses every cache, and the step waits on memory. Consecutive user ids are cut into blocks whose rows
    fill `BLOCK_BYTES`, and each epoch visits the blocks one after the other (`epoch_dataset(groups=...)`), in a
    new random order, each block's ratings shuffled: the rows a batch touches are then cached (ML-25M size: 2.6
    against 7.9 s an epoch, the same RMSE). The items keep their global shuffle. A user with more than
    `BLOCK_REPEATS` x (ratings per block / batch size) ratings would repeat that often in each batch of its
    block (one summed step of all its ratings' gradients); that user's ratings go to blocks drawn at random
    (seeded), so its share of every batch is what the plain shuffle gives it.
    """
    row_bytes = 4 * (config.factors + 1)
    if config.optimizer != "sgd" or part.num_users * row_bytes <= BLOCKED_TABLE_BYTES:
        return None
    per_block = max(1, BLOCK_BYTES // row_bytes)
    blocks = -(-part.num_users // per_block)
    groups = (part.users // per_block).astype(np.int32)
    limit = BLOCK_REPEATS * len(part) / blocks / config.batch_size
    heavy = np.bincount(part.users, minlength=part.num_users)[part.users] > limit
    groups[heavy] = np.random.default_rng([config.seed, 16]).integers(0, blocks, int(heavy.sum()))
    return group_members(groups)


def epoch_batches(part, config, epoch, groups=None):
    """Epoch `epoch`'s ((users, items), ratings) batches of the interactions `part`, shuffled by
    `epoch_dataset` with `config.seed` (cache-blocked by `groups`, the blocks from `user_blocks`): what `train` feeds
    `training.fit` each epoch. For the XLA-compiled sgd every batch is full (the last one topped up with the
    epoch's first ratings), so it compiles once."""
    return epoch_dataset(((part.users, part.items), part.ratings), config.batch_size, config.seed, epoch,
                         fill_last=config.optimizer == "sgd", groups=groups)


def training_batches(part, config, epochs):
    """All `epochs` of `epoch_batches` as one dataset (epoch 0 first), for a single `model.fit` call."""
    groups = user_blocks(part, config)
    dataset = epoch_batches(part, config, 0, groups)
    for epoch in range(1, epochs):
        dataset = dataset.concatenate(epoch_batches(part, config, epoch, groups))
    return dataset


def predict_ratings(model, users, items, scale=RATING_SCALE, batch_size=8192):
    """Model ratings for (users, items) pairs, clipped to the rating `scale`: float32 `(n,)`."""
    out = model.predict((np.asarray(users, np.int32), np.asarray(items, np.int32)), batch_size=batch_size, verbose=0)
    return np.clip(out, *scale)


def rating_rmse(model, part):
    """RMSE of the model's clipped ratings on the interactions `part` (NaN when a rating is not finite)."""
    predicted = predict_ratings(model, part.users, part.items, part.rating_scale)
    if not np.isfinite(predicted).all():
        return float("nan")
    return float(root_mean_squared_error(part.ratings, predicted))


def _load(ctx):
    cfg = ctx.config
    return load_splits(ctx.data_dir, ctx.demo, "random", cfg.test_ratio, cfg.val_ratio, cfg.seed,
                       **interaction_source(ctx))


def _build(config, splits):
    fit = splits.fit
    return build(config, fit.num_users, fit.num_items, float(fit.ratings.mean()))


def fitted_batch_size(config, ratings, replicas=1):
    """`config.batch_size`, or for sgd on fewer training `ratings` than a batch, the largest multiple of
    `replicas` up to `ratings`: sgd's full batches would repeat each rating batch / ratings times in one summed
    step (259 ratings in a batch of 8,192: each 32 times, and the default --lr diverged in epoch 7)."""
    if config.optimizer != "sgd" or ratings >= config.batch_size:
        return config.batch_size
    return max(replicas, ratings // replicas * replicas)


def train(ctx):
    cfg = ctx.config
    splits = _load(ctx)
    fit = splits.fit
    batch_size = fitted_batch_size(cfg, len(fit), ctx.strategy.num_replicas_in_sync)
    if batch_size != cfg.batch_size:
        print(f"note: {len(fit)} training ratings are fewer than --batch-size {cfg.batch_size}; "
              f"sgd takes batches of {batch_size}", file=sys.stderr)
        cfg = dataclasses.replace(cfg, batch_size=batch_size)
    with ctx.strategy.scope():
        model = _build(cfg, splits)
    run = ctx.run()
    save_id_maps(run, fit)
    advice = ("lower --lr (sgd's is a step per rating: 0.0035 by default; Adam's 0.03 is far too large for it, "
              "--preset adam selects Adam with its own)" if cfg.optimizer == "sgd" else "lower --lr")

    def after_epoch(epoch, logs):
        val_rmse = rating_rmse(model, splits.val)
        training.check_finite(val_rmse, epoch, advice)  # weights can overflow in an epoch's last steps
        return {"val_rmse": val_rmse}

    groups = user_blocks(fit, cfg)
    history = training.fit(model, lambda epoch: epoch_batches(fit, cfg, epoch, groups), run, epochs=cfg.epochs,
                           on_epoch_end=after_epoch, diverged_advice=advice)
    return {"loss": history[-1]["loss"], "val_rmse": history[-1]["val_rmse"], "rmse": rating_rmse(model, splits.test),
            **splits.train.stats(), "val_ratings": len(splits.val), "test_ratings": len(splits.test)}


def restore(ctx, splits):
    """The run's model (newest checkpoint), built for `splits` (the global mean is the fitted ratings')."""
    model = _build(ctx.config, splits)
    ctx.restore(model)
    return model


def evaluate(ctx):
    splits = _load(ctx)
    model = restore(ctx, splits)
    return {"rmse": rating_rmse(model, splits.test), "test_ratings": len(splits.test)}


def predict(ctx):
    """Top items for one user among the items they have not rated in training."""
    splits = _load(ctx)
    train_set = splits.train
    items = np.arange(train_set.num_items)

    def scores_of(user):
        return predict_ratings(restore(ctx, splits), np.full(len(items), user), items, train_set.rating_scale)

    return recommend(ctx, train_set, scores_of, "predicted_ratings", 3)


def export(ctx):
    """A SavedModel of the run (`recsys.serving.export_top_k`): a user id of the data in, the `--k` items with
    the highest predicted ratings (clipped to the rating scale, as `predict`) among those the user has not
    rated in training out."""
    from recsys import serving

    serving.check_export(ctx)
    splits = _load(ctx)
    model, train_set = restore(ctx, splits), splits.train
    low, high = train_set.rating_scale

    def scores_of(users):
        items = tf.range(model.num_items)
        p, _, user_bias, _ = model.lookup(users, tf.zeros_like(users))
        _, q, _, item_bias = model.lookup(tf.zeros_like(items), items)
        ratings = tf.matmul(p, q, transpose_b=True) + user_bias[:, None] + item_bias[None, :] + model.global_mean
        return tf.clip_by_value(ratings, low, high)

    return serving.export_top_k(ctx, model, train_set, scores_of)
