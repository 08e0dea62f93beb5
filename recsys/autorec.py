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
    python -m recsys.autorec predict --user 3 --top 5      # the highest reconstructed unrated items
"""
import sys
from dataclasses import dataclass, field

from common import cli
from recsys.movielens import TFDS, MovieLensConfig, recommend_arguments


@dataclass
class Config(MovieLensConfig):
    NEEDS_RATINGS = True  # a table needs a rating column

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


MODEL = cli.ModelModule("recsys.autorec_model")  # the model and its training, imported when a command runs
__getattr__ = MODEL.forward  # recsys.autorec.AutoRec, .build, .heldout_rmse, ... from recsys.autorec_model

COMMANDS = {
    "train": cli.Command(MODEL.command("train"), "train item-based AutoRec on the random split", trains=True),
    "evaluate": cli.Command(MODEL.command("evaluate"), "test RMSE of a trained run"),
    "predict": cli.Command(MODEL.command("predict"), "recommend unrated items for one user",
                           add_arguments=recommend_arguments),
}
SPEC = cli.Spec("recsys.autorec", "Item-based AutoRec on MovieLens (explicit ratings)", Config, COMMANDS, DEMO,
                model=MODEL, tfds=TFDS)
main, load = SPEC.main, SPEC.load
train, evaluate, predict = SPEC.api("train"), SPEC.api("evaluate"), SPEC.api("predict")


if __name__ == "__main__":
    sys.exit(main())
