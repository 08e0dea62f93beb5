"""Caser (the book's 16.8): convolutional sequence embedding for next-item recommendation.

The user's last L items form an `(L, d)` image. Horizontal filters of every height
1..L (ReLU, max over time) capture union-level patterns, vertical `(L, 1)` filters take
weighted sums of the L embeddings (point-level patterns); both go through a dense layer
to z, and score(u, S, i) = [z, p_u] . w_i + b_i. Trained with BPR on the
sequence-aware split (one negative per target per epoch). Each user's second-to-last
item is held out for validation (ranked every epoch given the L items before it); the
test ranks each user's latest item given their last L earlier items (the validation item
included) against all unobserved items, once at the end of `train` and by `evaluate`.

    python -m recsys.caser train --data-dir PATH/TO/ml-100k
    python -m recsys.caser evaluate        # the newest run, on the data it was trained on
    python -m recsys.caser evaluate --top-k 50             # HR@50 and NDCG@50 of the same run
    python -m recsys.caser predict --user 3 --top 5        # next items given the user's last L items
"""
import sys
from dataclasses import dataclass, field

from common import cli
from recsys.movielens import TFDS, export_arguments, recommend_arguments
from recsys.ranking import RankingConfig, protocol_arguments


@dataclass
class Config(RankingConfig):
    epochs: int = 20
    batch_size: int = 1024
    lr: float = 0.004
    factors: int = field(default=32, metadata=cli.at_least(1, "item/user embedding size d"))
    window: int = field(default=5, metadata=cli.at_least(1, "L, how many previous items the model sees"))
    horizontal: int = field(default=16, metadata=cli.at_least(1, "horizontal filters per height"))
    vertical: int = field(default=4, metadata=cli.at_least(1, "vertical filters"))
    dropout: float = field(default=0.05, metadata=cli.bounds(
        "[0, 1)", "dropout on the convolution features while training"))


DEMO = {"epochs": 4, "factors": 16, "batch_size": 256, "lr": 0.005, "horizontal": 8}


MODEL = cli.ModelModule("recsys.caser_model")  # the model and its training, imported when a command runs
__getattr__ = MODEL.forward  # recsys.caser.Caser, .build, .report, ... from recsys.caser_model

COMMANDS = {
    "train": cli.Command(MODEL.command("train"), "train Caser on the sequence-aware split (implicit feedback)",
                         trains=True),
    "evaluate": cli.Command(MODEL.command("evaluate"), "HR@k, NDCG@k and AUC of a trained run",
                            add_arguments=protocol_arguments),
    "predict": cli.Command(MODEL.command("predict"), "recommend items for one user (not those they interacted with)",
                           add_arguments=recommend_arguments),
    "export": cli.Command(MODEL.command("export"), "a SavedModel of the run: user id in, top-k unrated items out",
                          add_arguments=export_arguments),
}
SPEC = cli.Spec("recsys.caser", "Caser on MovieLens (sequence-aware recommendation)", Config, COMMANDS, DEMO,
                model=MODEL, tfds=TFDS)
main, load = SPEC.main, SPEC.load
train, evaluate, predict = SPEC.api("train"), SPEC.api("evaluate"), SPEC.api("predict")
export = SPEC.api("export")


if __name__ == "__main__":
    sys.exit(main())
