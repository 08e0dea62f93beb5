"""AutoRec's model, training and evaluation (`recsys.autorec` is its command and configuration).

The model and everything that needs TensorFlow live here, so `python -m recsys.autorec --help` and a
usage error answer without loading it.
"""
import keras
import numpy as np
from keras import ops
from sklearn.metrics import root_mean_squared_error

from common import training
from common.data import epoch_dataset
from common.models import ScaledLossModel
from recsys.movielens import recommend, save_id_maps
from recsys.splits import load_splits
from recsys.tables import interaction_source


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


def reconstruct(model, known):
    """The model's ratings `(num_items, num_users)` reconstructed from the `known` interactions, clipped to
    the rating scale."""
    return np.clip(model.predict(item_columns(known), batch_size=512, verbose=0), *known.rating_scale)


def heldout_rmse(model, known, heldout):
    """RMSE on the `heldout` interactions of the reconstruction of the `known` ones (clipped to the rating scale)."""
    pred = reconstruct(model, known)[heldout.items, heldout.users]
    return float(root_mean_squared_error(heldout.ratings, pred))


def _load(ctx):
    cfg = ctx.config
    return load_splits(ctx.data_dir, ctx.demo, "random", cfg.test_ratio, cfg.val_ratio, cfg.seed,
                       **interaction_source(ctx))


def train(ctx):
    cfg = ctx.config
    splits = _load(ctx)
    items = item_columns(splits.fit)
    with ctx.strategy.scope():
        model = build(cfg, items.shape[1])
    run = ctx.run()
    save_id_maps(run, splits.fit)

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


def predict(ctx):
    """Top items for one user among the items they have not rated in training: the user's ratings read from
    the reconstruction of every item's column of training ratings (as the test RMSE reads them)."""
    train_set = _load(ctx).train
    return recommend(ctx, train_set, lambda user: reconstruct(restore(ctx, train_set.num_users), train_set)[:, user],
                     "predicted_ratings", 3)
