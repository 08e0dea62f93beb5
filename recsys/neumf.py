"""NeuMF (the book's 16.6): generalized matrix factorization fused with an MLP, ranked with BPR.

score(u, i) = h . [p_u * q_i, MLP([u_u, v_i])] with separate embeddings for the GMF and
MLP paths, trained on the sequence-aware split's implicit feedback with one sampled
negative per observed interaction per epoch and the BPR (or hinge) loss. Each user's
second-to-last item is held out for validation (`val_hr_at_10`, `val_auc`, ... every
epoch); the test ranks each user's latest item against every item the user has not
interacted with, once at the end of `train` and by `evaluate`.

    python -m recsys.neumf train --data-dir PATH/TO/ml-100k
    python -m recsys.neumf evaluate        # the newest run, on the data it was trained on
"""
import sys
from dataclasses import dataclass, field

from common import cli
from recsys.ranking import RankingConfig, protocol_arguments


@dataclass
class Config(RankingConfig):
    epochs: int = 20
    batch_size: int = 1024
    lr: float = 0.002
    factors: int = field(default=64, metadata=cli.at_least(1, "GMF and MLP embedding size"))
    hidden: tuple = field(default=(64, 32, 16), metadata=cli.int_list("MLP layer widths"))
    weight_decay: float = field(default=1e-3, metadata=cli.bounds("[0, inf)", "L2 penalty on the batch's embeddings"))


DEMO = {"epochs": 4, "factors": 16, "hidden": (32, 16), "batch_size": 256, "lr": 0.005}


def _model():
    """`recsys.neumf_model`: the model and its training, imported (with TensorFlow) when a command runs."""
    from recsys import neumf_model

    return neumf_model


def train(ctx):
    return _model().train(ctx)


def evaluate(ctx):
    return _model().evaluate(ctx)


def __getattr__(name):
    """The model's names (`NeuMF`, `build`, `report`, ...) from `recsys.neumf_model`."""
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(_model(), name)


COMMANDS = {
    "train": cli.Command(train, "train NeuMF on the sequence-aware split (implicit feedback)", trains=True),
    "evaluate": cli.Command(evaluate, "HR@k, NDCG@k and AUC of a trained run", add_arguments=protocol_arguments),
}


def main(argv=None):
    return cli.main("NeuMF on MovieLens (implicit feedback, BPR)", Config, COMMANDS,
                    demo=DEMO, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
