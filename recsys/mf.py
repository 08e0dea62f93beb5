"""Matrix factorization with user and item biases (the book's 16.3), trained with an L2 loss.

Predicted rating r(u, i) = p_u . q_i + b_u + b_i + mu, fitted to the observed ratings of
the random 90/10 MovieLens split with squared error plus an L2 penalty on the factors and
biases looked up in each batch. `evaluate` prints the test RMSE (predictions clipped to
the 1-5 scale).

    python -m recsys.mf train --data-dir ../shared/data/ml-100k
    python -m recsys.mf evaluate --data-dir ../shared/data/ml-100k
"""
import sys
from dataclasses import dataclass, field

import keras
import numpy as np
from keras import ops

from common import cli, training
from common.data import epoch_dataset
from common.models import ScaledLossModel
from common.errors import UsageError
from recsys import data as rdata
from recsys.metrics import rmse


@dataclass
class Config(cli.TrainConfig):
    epochs: int = 20
    batch_size: int = 512
    lr: float = 0.003
    factors: int = field(default=64, metadata=cli.at_least(1, "latent factors per user and item"))
    weight_decay: float = field(default=0.15, metadata=cli.bounds(
        "[0, inf)", "L2 penalty on the batch's factors and biases"))
    test_ratio: float = field(default=0.1, metadata=cli.bounds(
        "(0, 1)", "fraction of ratings held out for the test set"))


DEMO = {"epochs": 5, "factors": 16, "batch_size": 256, "lr": 0.01}


@keras.saving.register_keras_serializable(package="dlsuite")
class MatrixFactorization(ScaledLossModel):
    """r(u, i) = p_u . q_i + b_u + b_i + mu for inputs (users `(batch,)`, items `(batch,)`) -> `(batch,)`."""

    def __init__(self, num_users, num_items, factors=64, weight_decay=0.0, global_mean=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_users, self.num_items, self.factors = num_users, num_items, factors
        self.weight_decay, self.global_mean = weight_decay, global_mean
        init = keras.initializers.RandomNormal(stddev=0.01)
        self.user_factors = keras.layers.Embedding(num_users, factors, embeddings_initializer=init)
        self.item_factors = keras.layers.Embedding(num_items, factors, embeddings_initializer=init)
        self.user_bias = keras.layers.Embedding(num_users, 1, embeddings_initializer="zeros")
        self.item_bias = keras.layers.Embedding(num_items, 1, embeddings_initializer="zeros")

    def call(self, inputs, training=False):
        users, items = inputs
        p, q = self.user_factors(users), self.item_factors(items)
        return ops.sum(p * q, axis=-1) + self.user_bias(users)[:, 0] + self.item_bias(items)[:, 0] + self.global_mean

    def training_loss(self, batch):
        """Mean squared error + weight_decay x mean squared norm of the batch's factors and biases."""
        (users, items), ratings = batch
        loss = ops.mean(ops.square(self((users, items), training=True) - ratings))
        if self.weight_decay:
            looked_up = (self.user_factors(users), self.item_factors(items), self.user_bias(users),
                         self.item_bias(items))
            loss = loss + self.weight_decay * ops.mean(sum(ops.sum(e * e, axis=-1) for e in looked_up))
        return loss

    def get_config(self):
        return {**super().get_config(), "num_users": self.num_users, "num_items": self.num_items,
                "factors": self.factors, "weight_decay": self.weight_decay, "global_mean": self.global_mean}


def build(config, num_users, num_items, global_mean):
    model = MatrixFactorization(num_users, num_items, config.factors, config.weight_decay, global_mean)
    model.compile(keras.optimizers.Adam(config.lr))
    model((np.zeros(1, np.int32), np.zeros(1, np.int32)))
    return model


def predict_ratings(model, users, items, batch_size=8192):
    """Model ratings for (users, items) pairs, clipped to the 1-5 scale: float32 `(n,)`."""
    out = model.predict((np.asarray(users, np.int32), np.asarray(items, np.int32)), batch_size=batch_size, verbose=0)
    return np.clip(out, *rdata.RATING_SCALE)


def _load(ctx):
    cfg = ctx.config
    return rdata.load_split(ctx.data_dir, ctx.demo, "random", cfg.test_ratio, cfg.seed)


def train(ctx):
    cfg = ctx.config
    train_set, test_set = _load(ctx)
    mean = float(train_set.ratings.mean())
    with ctx.strategy.scope():
        model = build(cfg, train_set.num_users, train_set.num_items, mean)
    run = ctx.run()

    def dataset(epoch):
        return epoch_dataset(((train_set.users, train_set.items), train_set.ratings), cfg.batch_size, cfg.seed, epoch)

    def test_rmse(epoch, logs):
        return {"test_rmse": rmse(predict_ratings(model, test_set.users, test_set.items), test_set.ratings)}

    history = training.fit(model, dataset, run, epochs=cfg.epochs, on_epoch_end=test_rmse)
    return {"loss": history[-1]["loss"], "rmse": history[-1]["test_rmse"], **train_set.stats()}


def restore(ctx, train_set):
    model = build(ctx.config, train_set.num_users, train_set.num_items, float(train_set.ratings.mean()))
    training.Run(ctx.run_dir, resume=True).restore({"model": model})
    return model


def evaluate(ctx):
    train_set, test_set = _load(ctx)
    model = restore(ctx, train_set)
    return {"rmse": rmse(predict_ratings(model, test_set.users, test_set.items), test_set.ratings),
            "test_ratings": len(test_set)}


def _predict_arguments(parser):
    parser.add_argument("--user", type=int, required=True, help="user id as in u.data (from 1)")
    parser.add_argument("--top", type=int, default=10, help="how many unrated items to recommend")


def predict(ctx):
    """Top items for one user among the items they have not rated in training."""
    train_set, _ = _load(ctx)
    user = ctx.args.user
    if not 1 <= user <= train_set.num_users:
        raise UsageError(f"--user {user} is outside 1..{train_set.num_users}")
    model = restore(ctx, train_set)
    items = np.arange(train_set.num_items)
    scores = predict_ratings(model, np.full(len(items), user - 1), items)
    scores[rdata.UserItemIndex.of(train_set).mask([user - 1])[0]] = -np.inf
    top = np.argsort(-scores, kind="stable")[:ctx.args.top]
    return {"user": user, "items": (top + 1).tolist(), "predicted_ratings": np.round(scores[top], 3).tolist()}


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
