"""What the implicit-feedback models (NeuMF, Caser) share apart from Keras: flags, data, protocol.

`RankingConfig` holds the flags both models share and `protocol_arguments` lets `evaluate` score
a run at another k or under another protocol. `pairwise_dataset` draws fresh negatives each epoch
(seeded by `epoch_rng(seed, epoch)`, so a resumed run sees the same triples), and
`ranking_report` computes HR@k, NDCG@k and AUC under the full protocol (all unobserved items)
or the NCF paper's sampled one (`--protocol sampled --negatives 100`). The model they train,
`PairwiseRanker`, and its training loop `fit_ranker` are `recsys.ranking_model`; importing this
module loads neither TensorFlow nor Keras, so the commands' flags answer at once.
"""
import argparse
from dataclasses import dataclass, field

import numpy as np

from common import cli
from common.data import epoch_dataset, epoch_rng
from recsys.implicit import UserItemIndex, sample_negatives
from recsys.losses import LOSSES
from recsys.metrics import evaluate_ranking
from recsys.movielens import MovieLensConfig

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
    """`evaluate --top-k/--protocol/--negatives`: score a trained run at another k or under another protocol
    than its config's (given flags override the run's saved config fields of the same names)."""
    parser.add_argument("--top-k", type=cli.positive_int, default=argparse.SUPPRESS, metavar="K",
                        help="k of HR@k and NDCG@k (default: the run's)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default=argparse.SUPPRESS,
                        help="ranking protocol (default: the run's)")
    parser.add_argument("--negatives", type=cli.positive_int, default=argparse.SUPPRESS,
                        help="sampled negatives per user (default: the run's)")


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
