"""DeepFM (the book's 16.10): an FM and an MLP sharing the field embeddings, logits added.

Same data, flags and commands as `recsys.fm`, plus the deep component's widths and dropout.

    python -m recsys.deepfm train --demo
    python -m recsys.deepfm evaluate       # the newest run, on the data it was trained on
"""
import sys
from dataclasses import dataclass, field

from common import cli
from recsys import fm


@dataclass
class Config(fm.Config):
    hidden: tuple = field(default=(32,), metadata=cli.int_list("MLP layer widths"))
    dropout: float = field(default=0.0, metadata=cli.bounds("[0, 1)", "dropout after each MLP layer while training"))


DEMO = dict(fm.DEMO)


def _model():
    """`recsys.deepfm_model`: the model and its training, imported (with TensorFlow) when a command runs."""
    from recsys import deepfm_model

    return deepfm_model


def train(ctx):
    return _model().train(ctx)


def evaluate(ctx):
    return _model().evaluate(ctx)


def __getattr__(name):
    """The model's names (`build`, `restore`, `model_kwargs`) from `recsys.deepfm_model`."""
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(_model(), name)


COMMANDS = {
    "train": cli.Command(train, "train DeepFM on click data", trains=True),
    "evaluate": cli.Command(evaluate, "test AUC and log loss of a trained run"),
}


def main(argv=None):
    return cli.main("DeepFM for click-through rate", Config, COMMANDS, demo=DEMO, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
