"""Item-based AutoRec (the book's 16.4): an autoencoder over each item's column of ratings.

Each item is the vector of its training ratings by all users (0 = unobserved). A sigmoid
hidden layer encodes it, a linear layer reconstructs all users' ratings, and the loss
counts only the observed entries (sum of squared errors per item, averaged over the
batch) plus an L2 penalty on the weights. A test rating r(u, i) is read from the
reconstruction of item i's training column, clipped to the 1-5 scale.

    python -m recsys.autorec train --data-dir ../shared/data/ml-100k
    python -m recsys.autorec evaluate --data-dir ../shared/data/ml-100k
"""
import sys
from dataclasses import dataclass, field

import keras
import numpy as np
from keras import ops

from common import cli, training
from common.data import epoch_dataset
from common.models import ScaledLossModel
from recsys import data as rdata
from recsys.metrics import rmse


@dataclass
class Config(cli.TrainConfig):
    epochs: int = 40
    batch_size: int = 256
    lr: float = 0.002
    hidden: int = field(default=500, metadata=cli.at_least(1, "hidden units (sigmoid)"))
    dropout: float = field(default=0.05, metadata=cli.bounds("[0, 1)", "dropout on the hidden layer while training"))
    weight_decay: float = field(default=0.03, metadata=cli.bounds("[0, inf)", "L2 penalty on both weight matrices"))
    test_ratio: float = field(default=0.1, metadata=cli.bounds(
        "(0, 1)", "fraction of ratings held out for the test set"))


DEMO = {"epochs": 30, "hidden": 64, "batch_size": 32, "lr": 0.005, "weight_decay": 0.01}


@keras.saving.register_keras_serializable(package="dlsuite")
class AutoRec(ScaledLossModel):
    """`(batch, num_users)` ratings of items -> `(batch, num_users)` reconstruction."""

    def __init__(self, num_users, hidden=500, dropout=0.05, weight_decay=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_users, self.hidden, self.dropout, self.weight_decay = num_users, hidden, dropout, weight_decay
        self.encoder = keras.layers.Dense(hidden, activation="sigmoid")
        self.drop = keras.layers.Dropout(dropout)
        self.decoder = keras.layers.Dense(num_users)

    def call(self, ratings, training=False):
        return self.decoder(self.drop(self.encoder(ratings), training=training))

    def training_loss(self, batch):
        """Mean over items of the squared error summed over observed (non-zero) ratings, plus L2 on the weights."""
        ratings, _ = batch
        observed = ops.cast(ops.not_equal(ratings, 0), ratings.dtype)
        error = (self(ratings, training=True) - ratings) * observed
        loss = ops.mean(ops.sum(ops.square(error), axis=-1))
        if self.weight_decay:
            loss = loss + self.weight_decay * (ops.sum(ops.square(self.encoder.kernel))
                                               + ops.sum(ops.square(self.decoder.kernel)))
        return loss

    def get_config(self):
        return {**super().get_config(), "num_users": self.num_users, "hidden": self.hidden,
                "dropout": self.dropout, "weight_decay": self.weight_decay}


def build(config, num_users):
    model = AutoRec(num_users, config.hidden, config.dropout, config.weight_decay)
    model.compile(keras.optimizers.Adam(config.lr))
    model(np.zeros((1, num_users), np.float32))
    return model


def test_rmse(model, item_matrix, test_set):
    """RMSE of the reconstruction of `item_matrix` `(items, users)` on the test ratings (clipped 1-5)."""
    recon = model.predict(item_matrix, batch_size=512, verbose=0)
    pred = np.clip(recon[test_set.items, test_set.users], *rdata.RATING_SCALE)
    return rmse(pred, test_set.ratings)


def _load(ctx):
    cfg = ctx.config
    train_set, test_set = rdata.load_split(ctx.data_dir, ctx.demo, "random", cfg.test_ratio, cfg.seed)
    return train_set.rating_matrix().T.copy(), test_set


def train(ctx):
    cfg = ctx.config
    items, test_set = _load(ctx)
    with ctx.strategy.scope():
        model = build(cfg, items.shape[1])
    run = ctx.run()

    def dataset(epoch):
        return epoch_dataset((items, items), cfg.batch_size, cfg.seed, epoch)

    history = training.fit(model, dataset, run, epochs=cfg.epochs,
                           on_epoch_end=lambda epoch, logs: {"test_rmse": test_rmse(model, items, test_set)})
    return {"loss": history[-1]["loss"], "rmse": history[-1]["test_rmse"]}


def evaluate(ctx):
    items, test_set = _load(ctx)
    model = build(ctx.config, items.shape[1])
    training.Run(ctx.run_dir, resume=True).restore({"model": model})
    return {"rmse": test_rmse(model, items, test_set), "test_ratings": len(test_set)}


COMMANDS = {
    "train": cli.Command(train, "train item-based AutoRec on the random split", trains=True),
    "evaluate": cli.Command(evaluate, "test RMSE of a trained run"),
}


def main(argv=None):
    return cli.main("Item-based AutoRec on MovieLens (explicit ratings)", Config, COMMANDS,
                    demo=DEMO, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
