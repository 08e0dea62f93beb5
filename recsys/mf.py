"""Matrix factorization with user and item biases (the book's 16.3), trained with an L2 loss.

Predicted rating r(u, i) = p_u . q_i + b_u + b_i + mu, fitted to the observed ratings of
the random 90/10 MovieLens split with squared error plus an L2 penalty on the factors and
biases looked up in each batch, by `--optimizer lazy_adam` (`recsys.lazy_adam`: Adam on the
batch's rows only, so a step costs work proportional to the batch, not to the tables) or the
textbook `adam` on dense gradients. A seeded `--val-ratio` of the training ratings is held
out as the validation set, scored every epoch (`val_rmse` in metrics.json and curves.png);
the test RMSE (predictions clipped to the rating scale) is computed once, at the end of
`train` and by `evaluate`.

    python -m recsys.mf train --data-dir PATH/TO/ml-100k
    python -m recsys.mf evaluate          # the newest run, on the data it was trained on
"""
import sys
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from sklearn.metrics import root_mean_squared_error

from common import cli, training
from common.data import epoch_dataset
from common.errors import UsageError
from common.models import ScaledLossModel
from recsys import data as rdata
from recsys.lazy_adam import LazyAdam


@dataclass
class Config(rdata.MovieLensConfig):
    epochs: int = 20
    batch_size: int = 8192
    lr: float = 0.03
    factors: int = field(default=64, metadata=cli.at_least(1, "latent factors per user and item"))
    weight_decay: float = field(default=0.1, metadata=cli.bounds(
        "[0, inf)", "L2 penalty on the batch's factors and biases"))
    test_ratio: float = field(default=0.1, metadata=cli.bounds(
        "(0, 1)", "fraction of ratings held out for the test set"))
    val_ratio: float = field(default=0.05, metadata=cli.bounds(
        "(0, 1)", "fraction of the training ratings held out for the per-epoch validation RMSE"))
    optimizer: str = field(default="lazy_adam", metadata={"choices": ["lazy_adam", "adam"], "help": (
        "lazy_adam: Adam on the batch's rows only (work per step follows the batch, not the tables); "
        "adam: textbook Adam on dense gradients (every row's moments decay every step)")})


DEMO = {"epochs": 5, "factors": 16, "batch_size": 256, "lr": 0.01}


@keras.saving.register_keras_serializable(package="dlsuite")
class MatrixFactorization(ScaledLossModel):
    """r(u, i) = p_u . q_i + b_u + b_i + mu for inputs (users `(batch,)`, items `(batch,)`) -> `(batch,)`.

    `dense_gradients` (see `common.models.ScaledLossModel`): True for the textbook Adam, False to hand
    the optimizer the embeddings' `IndexedSlices` (what `recsys.lazy_adam.LazyAdam` needs)."""

    def __init__(self, num_users, num_items, factors=64, weight_decay=0.0, global_mean=0.0, dense_gradients=True,
                 **kwargs):
        super().__init__(**kwargs)
        self.dense_gradients = dense_gradients
        self.num_users, self.num_items, self.factors = num_users, num_items, factors
        self.weight_decay, self.global_mean = weight_decay, global_mean
        # one initializer per table: a shared one holds one fixed seed and would give tables of
        # the same shape identical starting values
        init = lambda: keras.initializers.RandomNormal(stddev=0.01)  # noqa: E731
        self.user_factors = keras.layers.Embedding(num_users, factors, embeddings_initializer=init())
        self.item_factors = keras.layers.Embedding(num_items, factors, embeddings_initializer=init())
        self.user_bias = keras.layers.Embedding(num_users, 1, embeddings_initializer="zeros")
        self.item_bias = keras.layers.Embedding(num_items, 1, embeddings_initializer="zeros")

    def build(self, input_shape=None):
        """Create the four tables (what loading a saved model.keras calls; `lookup` bypasses the layers' `__call__`)."""
        for layer in (self.user_factors, self.item_factors, self.user_bias, self.item_bias):
            if not layer.built:
                layer.build()
        super().build(input_shape)

    def lookup(self, users, items):
        """(p_u, q_i, b_u, b_i) of the batch, `(batch, factors)` twice then `(batch,)` twice. Each row is read with
        `tf.gather` on the variable (a sparse `ResourceGather`): `keras.layers.Embedding` first reads the whole table,
        which after `LazyAdam`'s scatters (TensorFlow's copy-on-read mode) copies all of it every step."""
        def rows(layer, ids):
            return tf.gather(layer.embeddings.value, ids)

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

    def get_config(self):
        return {**super().get_config(), "num_users": self.num_users, "num_items": self.num_items,
                "factors": self.factors, "weight_decay": self.weight_decay, "global_mean": self.global_mean,
                "dense_gradients": self.dense_gradients}


def build(config, num_users, num_items, global_mean):
    """The model for `config`, compiled with its `--optimizer`: `adam` on dense gradients, or `lazy_adam`
    on the embeddings' `IndexedSlices` (no XLA: `tf.unique` has a data-dependent shape)."""
    lazy = config.optimizer == "lazy_adam"
    model = MatrixFactorization(num_users, num_items, config.factors, config.weight_decay, global_mean,
                                dense_gradients=not lazy)
    if lazy:
        model.compile(LazyAdam(config.lr), jit_compile=False)
    else:
        model.compile(keras.optimizers.Adam(config.lr))
    model((np.zeros(1, np.int32), np.zeros(1, np.int32)))
    return model


def epoch_batches(part, config, epoch):
    """Epoch `epoch`'s ((users, items), ratings) batches of the interactions `part`, shuffled by
    `epoch_dataset` with `config.seed`: what `train` feeds `training.fit` each epoch."""
    return epoch_dataset(((part.users, part.items), part.ratings), config.batch_size, config.seed, epoch)


def training_batches(part, config, epochs):
    """All `epochs` of `epoch_batches` as one dataset (epoch 0 first), for a single `model.fit` call."""
    dataset = epoch_batches(part, config, 0)
    for epoch in range(1, epochs):
        dataset = dataset.concatenate(epoch_batches(part, config, epoch))
    return dataset


def predict_ratings(model, users, items, scale=rdata.RATING_SCALE, batch_size=8192):
    """Model ratings for (users, items) pairs, clipped to the rating `scale`: float32 `(n,)`."""
    out = model.predict((np.asarray(users, np.int32), np.asarray(items, np.int32)), batch_size=batch_size, verbose=0)
    return np.clip(out, *scale)


def rating_rmse(model, part):
    """RMSE of the model's clipped ratings on the interactions `part`."""
    return float(root_mean_squared_error(part.ratings, predict_ratings(model, part.users, part.items,
                                                                       part.rating_scale)))


def _load(ctx):
    cfg = ctx.config
    return rdata.load_splits(ctx.data_dir, ctx.demo, "random", cfg.test_ratio, cfg.val_ratio, cfg.seed,
                             cfg.dataset)


def _build(config, splits):
    fit = splits.fit
    return build(config, fit.num_users, fit.num_items, float(fit.ratings.mean()))


def train(ctx):
    cfg = ctx.config
    splits = _load(ctx)
    fit = splits.fit
    with ctx.strategy.scope():
        model = _build(cfg, splits)
    run = ctx.run()
    rdata.save_id_maps(run, fit)
    history = training.fit(model, lambda epoch: epoch_batches(fit, cfg, epoch), run, epochs=cfg.epochs,
                           on_epoch_end=lambda epoch, logs: {"val_rmse": rating_rmse(model, splits.val)})
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


def _predict_arguments(parser):
    parser.add_argument("--user", type=int, required=True, help="user id as in the ratings file")
    parser.add_argument("--top", type=int, default=10, help="how many unrated items to recommend")


def predict(ctx):
    """Top items for one user among the items they have not rated in training."""
    splits = _load(ctx)
    train_set = splits.train
    user_ids, item_ids = rdata.load_id_maps(ctx.run_dir, train_set)
    user = ctx.args.user
    dense = int(np.searchsorted(user_ids, user))
    if dense >= len(user_ids) or user_ids[dense] != user:
        raise UsageError(f"--user {user} is not a user id of {train_set.source} "
                         f"(ids {user_ids[0]}..{user_ids[-1]}, {len(user_ids)} users)")
    model = restore(ctx, splits)
    items = np.arange(train_set.num_items)
    scores = predict_ratings(model, np.full(len(items), dense), items, train_set.rating_scale)
    scores[rdata.UserItemIndex.of(train_set).mask([dense])[0]] = -np.inf
    top = np.argsort(-scores, kind="stable")[:ctx.args.top]
    return {"user": user, "items": item_ids[top].tolist(), "predicted_ratings": np.round(scores[top], 3).tolist()}


COMMANDS = {
    "train": cli.Command(train, "train matrix factorization on the random split", trains=True),
    "evaluate": cli.Command(evaluate, "test RMSE of a trained run"),
    "predict": cli.Command(predict, "recommend unrated items for one user", add_arguments=_predict_arguments),
}


def main(argv=None):
    return cli.main("Matrix factorization on MovieLens (explicit ratings)", Config, COMMANDS,
                    demo=DEMO, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
