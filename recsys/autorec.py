"""Item-based AutoRec (the book's 16.4): an autoencoder over each item's column of ratings.

Each item is the vector of its training ratings by all users (0 = unobserved). A sigmoid
hidden layer encodes it, a linear layer reconstructs all users' ratings, and the loss
counts only the observed entries (sum of squared errors per item, averaged over the
batch) plus an L2 penalty on the weights. A seeded `--val-ratio` of the training
ratings is held out and scored every epoch (`val_rmse`): a validation rating r(u, i) is
read from the reconstruction of item i's column of the fitted ratings. The test RMSE is
computed once, at the end of `train` and by `evaluate`, from the reconstruction of all
ratings known before the test (fitted plus validation), clipped to the rating scale.

    python -m recsys.autorec train --data-dir PATH/TO/ml-100k
    python -m recsys.autorec evaluate      # the newest run, on the data it was trained on
"""
import sys
from dataclasses import dataclass, field

import keras
import numpy as np
from keras import ops

from sklearn.metrics import root_mean_squared_error

from common import cli, training
from common.data import epoch_dataset
from common.models import ScaledLossModel
from recsys import data as rdata


@dataclass
class Config(rdata.MovieLensConfig):
    epochs: int = 40
    batch_size: int = 256
    lr: float = 0.002
    hidden: int = field(default=500, metadata=cli.at_least(1, "hidden units (sigmoid)"))
    dropout: float = field(default=0.05, metadata=cli.bounds("[0, 1)", "dropout on the hidden layer while training"))
    weight_decay: float = field(default=0.03, metadata=cli.bounds("[0, inf)", "L2 penalty on both weight matrices"))
    test_ratio: float = field(default=0.1, metadata=cli.bounds(
        "(0, 1)", "fraction of ratings held out for the test set"))
    val_ratio: float = field(default=0.05, metadata=cli.bounds(
        "(0, 1)", "fraction of the training ratings held out for the per-epoch validation RMSE"))


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


def item_columns(interactions):
    """Items' rating columns `(num_items, num_users)` float32 (0 = unobserved): the model's inputs."""
    return interactions.rating_matrix().T.copy()


def heldout_rmse(model, known, heldout):
    """RMSE on the `heldout` interactions of the reconstruction of the `known` ones (clipped to the rating scale)."""
    recon = model.predict(item_columns(known), batch_size=512, verbose=0)
    pred = np.clip(recon[heldout.items, heldout.users], *heldout.rating_scale)
    return float(root_mean_squared_error(heldout.ratings, pred))


def _load(ctx):
    cfg = ctx.config
    return rdata.load_splits(ctx.data_dir, ctx.demo, "random", cfg.test_ratio, cfg.val_ratio, cfg.seed,
                             cfg.dataset)


def train(ctx):
    cfg = ctx.config
    splits = _load(ctx)
    items = item_columns(splits.fit)
    with ctx.strategy.scope():
        model = build(cfg, items.shape[1])
    run = ctx.run()

    def dataset(epoch):
        return epoch_dataset((items, items), cfg.batch_size, cfg.seed, epoch)

    history = training.fit(model, dataset, run, epochs=cfg.epochs,
                           on_epoch_end=lambda epoch, logs: {"val_rmse": heldout_rmse(model, splits.fit, splits.val)})
    return {"loss": history[-1]["loss"], "val_rmse": history[-1]["val_rmse"],
            "rmse": heldout_rmse(model, splits.train, splits.test), "test_ratings": len(splits.test)}


def restore(ctx, num_users):
    """The run's model (newest checkpoint)."""
    model = build(ctx.config, num_users)
    ctx.restore(model)
    return model


def evaluate(ctx):
    splits = _load(ctx)
    model = restore(ctx, splits.train.num_users)
    return {"rmse": heldout_rmse(model, splits.train, splits.test), "test_ratings": len(splits.test)}


COMMANDS = {
    "train": cli.Command(train, "train item-based AutoRec on the random split", trains=True),
    "evaluate": cli.Command(evaluate, "test RMSE of a trained run"),
}


def main(argv=None):
    return cli.main("Item-based AutoRec on MovieLens (explicit ratings)", Config, COMMANDS,
                    demo=DEMO, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
