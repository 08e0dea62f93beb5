"""Factorization machines for click-through rate (the book's 16.9), and the shared CTR commands.

A 2-way FM over categorical fields: logit = b + sum_f w[x_f] + sum_{f<g} <v[x_f], v[x_g]>,
with the pairwise term computed in O(k n) as 0.5 * sum_k((sum_f v)^2 - sum_f v^2).
`--no-interactions` leaves the linear part only, i.e. logistic regression (the baseline).
`recsys.deepfm` reuses the model (adding the deep component) and its training
(`recsys.fm_model`). A
seeded `--val-ratio` of the training rows is held out and scored every epoch (`val_auc`,
`val_logloss`); the test rows are scored once, at the end of `train` and by `evaluate`.

    python -m recsys.fm train --demo                 # generated CTR data (book format)
    python -m recsys.fm train --data-dir PATH/TO/ctr # the book's train.csv/test.csv
    python -m recsys.fm train --dataset criteo --data-dir PATH/TO/criteo --data-file train.txt
    python -m recsys.fm train --dataset criteo --demo  # a generated file in the Kaggle layout
    python -m recsys.fm evaluate                     # the newest run, on the data it was trained on
"""
import sys
from dataclasses import dataclass, field

from common import cli
from recsys.ctr import CTR_THRESHOLD


@dataclass
class Config(cli.TrainConfig):
    epochs: int = 8
    batch_size: int = 1024
    lr: float = 0.003
    factors: int = field(default=10, metadata=cli.at_least(1, "latent factors per feature"))
    interactions: bool = field(default=True, metadata={
        "help": "pairwise term (--no-interactions: logistic regression)"})
    weight_decay: float = field(default=1e-3, metadata=cli.bounds("[0, inf)", "L2 penalty on the batch's embeddings"))
    dataset: str = field(default="ctr", metadata={
        "choices": ["ctr", "criteo"], "help": (
            "ctr: the book's train.csv/test.csv; criteo: one Criteo file (Kaggle train.txt layout), streamed")})
    data_file: str = field(default="train.txt", metadata={"help": "Criteo file inside --data-dir"})
    threshold: int = field(default=CTR_THRESHOLD, metadata=cli.at_least(
        1, "values rarer than this share a bucket"))
    test_ratio: float = field(default=0.1, metadata=cli.bounds("(0, 1)", "Criteo rows held out for the test set"))
    val_ratio: float = field(default=0.1, metadata=cli.bounds(
        "(0, 1)", "training rows held out for the per-epoch validation AUC and log loss"))


DEMO = {}


def _model():
    """`recsys.fm_model`: the model and its training, imported (with TensorFlow) when a command runs."""
    from recsys import fm_model

    return fm_model


def train(ctx):
    return _model().train(ctx)


def evaluate(ctx):
    return _model().evaluate(ctx)


def __getattr__(name):
    """The model's names (`FactorizationMachine`, `build`, `ctr_report`, ...) from `recsys.fm_model`."""
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(_model(), name)


COMMANDS = {
    "train": cli.Command(train, "train a factorization machine on click data", trains=True),
    "evaluate": cli.Command(evaluate, "test AUC and log loss of a trained run"),
}


def main(argv=None):
    return cli.main("Factorization machine for click-through rate", Config, COMMANDS, demo=DEMO,
                    argv=argv)


if __name__ == "__main__":
    sys.exit(main())
