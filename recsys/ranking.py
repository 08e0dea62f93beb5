"""Shared machinery of the implicit-feedback models (NeuMF, Caser).

`PairwiseRanker` is a Keras model trained on (context, positive item, sampled negative
item) triples with a pairwise loss from `recsys.losses`; subclasses define `score`
(one item per example) and `score_all` (every item for a batch of users).
`pairwise_dataset` draws fresh negatives each epoch (seeded by `epoch_rng(seed, epoch)`,
so a resumed run sees the same triples), `ranking_report` computes HR@k, NDCG@k and AUC
under the full protocol (all unobserved items) or the NCF paper's sampled one (`--protocol
sampled --negatives 100`), and `fit_ranker` trains with per-epoch validation and scores the
test split once at the end. `RankingConfig` holds the flags both models share.
"""
import argparse
from dataclasses import dataclass, field

import numpy as np

from common import cli, training
from common.data import epoch_dataset, epoch_rng
from common.models import ScaledLossModel
from recsys.data import MovieLensConfig, UserItemIndex, sample_negatives
from recsys.losses import LOSSES
from recsys.metrics import evaluate_ranking

PROTOCOLS = ("full", "sampled")


@dataclass
class RankingConfig(MovieLensConfig):
    """The ranking flags of NeuMF and Caser (their Configs add the model's own)."""

    loss: str = field(default="bpr", metadata={"choices": sorted(LOSSES), "help": "pairwise ranking loss"})
    top_k: int = field(default=10, metadata=cli.at_least(1, "k of HR@k and NDCG@k"))
    protocol: str = field(default="full", metadata={"choices": list(PROTOCOLS), "help": (
        "full: the held-out item against every unobserved item; sampled: against --negatives sampled ones (NCF)")})
    negatives: int = field(default=100, metadata=cli.at_least(1, "sampled negatives per user (--protocol sampled)"))

    def sampled_negatives(self):
        """`negatives` under the sampled protocol, None under the full one (`ranking_report`'s argument)."""
        return self.negatives if self.protocol == "sampled" else None


def protocol_arguments(parser):
    """`evaluate --protocol/--negatives`: score a trained run under another protocol than its config's
    (given flags override the run's saved config fields of the same names)."""
    parser.add_argument("--protocol", choices=PROTOCOLS, default=argparse.SUPPRESS,
                        help="ranking protocol (default: the run's)")
    parser.add_argument("--negatives", type=cli.positive_int, default=argparse.SUPPRESS,
                        help="sampled negatives per user (default: the run's)")


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


def pairwise_dataset(context, users, positives, index, batch_size, seed, epoch):
    """tf.data of (context, positive, negative) batches with one fresh negative per positive.

    context: an array or tuple of arrays indexed like `positives`; users: `(n,)` whose
    training items (`index`) are excluded when sampling. Shuffled and sampled with
    `epoch_rng(seed, epoch)`.
    """
    negatives = sample_negatives(index, users, epoch_rng(seed, epoch))[:, 0]
    return epoch_dataset((context, positives, negatives), batch_size, seed, epoch)


def ranking_report(score_fn, known, heldout, k=10, negatives=None, seed=0, batch_users=256):
    """HR@k, NDCG@k and AUC of each user's held-out item against the items not in their `known` set.

    score_fn: `users (B,) -> (B, num_items)`; known, heldout: `Interactions` (validation:
    the fitted and the validation interactions; test: all training and the test ones).
    `negatives=None`: against every such item (full protocol); an int: against that many
    of them sampled with `seed` (the NCF paper's protocol; the held-out items themselves are
    never drawn). Users with several held-out interactions use the first one listed; the
    sequence-aware splits hold out exactly one per user.
    """
    users, first = np.unique(heldout.users, return_index=True)
    if negatives:
        known = known.concat(heldout)  # a negative is an item the user never interacted with
    return evaluate_ranking(score_fn, users, heldout.items[first], UserItemIndex.of(known), k, batch_users,
                            negatives, seed)


def fit_ranker(ctx, model, dataset, report, splits):
    """Train `model` with `common.training.fit`, validating every epoch; score the test split at the end.

    dataset: `epoch -> tf.data.Dataset`; report: `(model, known, heldout) -> dict` (a
    `ranking_report`); splits: `recsys.data.Splits`. Each epoch logs `val_hr_at_<k>`,
    `val_ndcg_at_<k>` and `val_auc` (the validation items ranked given the fitted ones).
    Returns the last epoch's loss and validation metrics and the test metrics (the test
    items ranked given all training interactions).
    """
    k = ctx.config.top_k
    keys = (f"hr_at_{k}", f"ndcg_at_{k}", "auc")

    def on_epoch_end(epoch, logs):
        result = report(model, splits.fit, splits.val)
        return {f"val_{key}": result[key] for key in keys}

    history = training.fit(model, dataset, ctx.run(), epochs=ctx.config.epochs, on_epoch_end=on_epoch_end)
    last = history[-1]
    return {"loss": last["loss"], **{f"val_{key}": last[f"val_{key}"] for key in keys},
            **report(model, splits.train, splits.test), "protocol": ctx.config.protocol}
