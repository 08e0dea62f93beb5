"""The Keras side of the implicit-feedback models (NeuMF, Caser): the pairwise ranker and its training.

`PairwiseRanker` is a Keras model trained on (context, positive item, sampled negative
item) triples with a pairwise loss from `recsys.losses`; subclasses define `score`
(one item per example) and `score_all` (every item for a batch of users). `fit_ranker`
trains with per-epoch validation and scores the test split once at the end. The flags, the
triples and the ranking protocol are `recsys.ranking`.
"""
from common import training
from common.models import ScaledLossModel
from recsys.losses import LOSSES
from recsys.movielens import save_id_maps


class PairwiseRanker(ScaledLossModel):
    """Base model: `train_step` minimises `LOSSES[loss](score(ctx, pos), score(ctx, neg))`.

    A batch is `(context, positives (batch,), negatives (batch,))`; the context is whatever
    `score` takes (user ids, or user ids and item windows). `penalty` adds an optional
    regularization term per side.
    """

    def __init__(self, loss="bpr", **kwargs):
        super().__init__(**kwargs)
        self.loss_name = loss
        self.pair_loss = LOSSES[loss]

    def score(self, context, items, training=False):
        """Scores `(batch,)` of one item per example."""
        raise NotImplementedError

    def penalty(self, context, items):
        """Regularization term (scalar) for one side of the batch; none by default."""
        return 0.0

    def score_all(self, context):
        """Scores `(batch, num_items)` of every item for each example."""
        raise NotImplementedError

    def call(self, inputs, training=False):
        context, items = inputs
        return self.score(context, items, training=training)

    def training_loss(self, batch):
        context, positives, negatives = batch
        loss = self.pair_loss(self.score(context, positives, training=True),
                              self.score(context, negatives, training=True))
        return loss + self.penalty(context, positives) + self.penalty(context, negatives)

    def get_config(self):
        return {**super().get_config(), "loss": self.loss_name}


def fit_ranker(ctx, model, dataset, report, splits):
    """Train `model` with `common.training.fit`, validating every epoch; score the test split at the end.

    dataset: `epoch -> tf.data.Dataset`; report: `(model, known, heldout) -> dict` (a
    `ranking_report`); splits: `recsys.splits.Splits`. Each epoch logs `val_hr_at_<k>`,
    `val_ndcg_at_<k>` and `val_auc` (the validation items ranked given the fitted ones).
    Returns the last epoch's loss and validation metrics and the test metrics (the test
    items ranked given all training interactions).
    """
    k = ctx.config.top_k
    keys = (f"hr_at_{k}", f"ndcg_at_{k}", "auc")

    def on_epoch_end(epoch, logs):
        result = report(model, splits.fit, splits.val)
        return {f"val_{key}": result[key] for key in keys}

    run = ctx.run()
    save_id_maps(run, splits.fit)
    history = training.fit(model, dataset, run, epochs=ctx.config.epochs, on_epoch_end=on_epoch_end)
    last = history[-1]
    return {"loss": last["loss"], **{f"val_{key}": last[f"val_{key}"] for key in keys},
            **report(model, splits.train, splits.test), "protocol": ctx.config.protocol}
