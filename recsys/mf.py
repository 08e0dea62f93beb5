"""Matrix factorization with user and item biases (the book's 16.3), trained with an L2 loss.

Predicted rating r(u, i) = p_u . q_i + b_u + b_i + mu, fitted to the observed ratings of
the random 90/10 MovieLens split with squared error plus an L2 penalty on the factors and
biases looked up in each batch. `--optimizer` (default `sgd`):

- `sgd`: the per-rating SGD of Funk's SVD and Surprise's `SVD`, a batch of 8,192 ratings at a
  time: every looked-up row moves by lr x its ratings' gradients (the batch's summed loss, so
  repeated users and items add up), by scatters into two tables whose last column is the bias,
  XLA-compiled on one replica. `--lr` and `--weight-decay` are per rating (Surprise's `lr_all`
  is twice `--lr` since its loss is half the squared error; `reg_all` is `--weight-decay`).
- `lazy_adam` (`recsys.lazy_adam`: Adam on the batch's rows only) and `adam` (textbook Adam on
  dense gradients), on the batch's mean loss; `--preset adam` gives their recipe.

A seeded `--val-ratio` of the training ratings is held out as the validation set, scored every
epoch (`val_rmse` in metrics.json and curves.png); the test RMSE (predictions clipped to the
rating scale) is computed once, at the end of `train` and by `evaluate`.

    python -m recsys.mf train --data-dir PATH/TO/ml-100k
    python -m recsys.mf evaluate          # the newest run, on the data it was trained on
    python -m recsys.mf train --data-dir PATH/TO/ml-100k --preset adam   # lazy Adam, 20 epochs
"""
import sys
from dataclasses import dataclass, field

from common import cli
from recsys.movielens import TFDS, MovieLensConfig, export_arguments, recommend_arguments


@dataclass
class Config(MovieLensConfig):
    NEEDS_RATINGS = True  # a table needs a rating column

    epochs: int = 40
    batch_size: int = 8192
    lr: float = field(default=0.0035, metadata=cli.positive(
        "learning rate; for sgd the step per rating on its squared error (Surprise's lr_all is twice it)"))
    factors: int = field(default=50, metadata=cli.at_least(1, "latent factors per user and item"))
    weight_decay: float = field(default=0.08, metadata=cli.bounds(
        "[0, inf)", "L2 penalty on the batch's factors and biases (for sgd per rating, as Surprise's reg_all)"))
    test_ratio: float = field(default=0.1, metadata=cli.bounds(
        "(0, 1)", "fraction of ratings held out for the test set"))
    val_ratio: float = field(default=0.05, metadata=cli.bounds(
        "(0, 1)", "fraction of the training ratings held out for the per-epoch validation RMSE"))
    init_scale: float = field(default=0.1, metadata=cli.positive(
        "standard deviation of the factors' normal initial values (biases start at 0)"))
    optimizer: str = field(default="sgd", metadata={"choices": ["sgd", "lazy_adam", "adam"], "help": (
        "sgd: per-rating SGD as in Funk's and Surprise's SVD, a batch of ratings at once (scatter updates "
        "of the looked-up rows, XLA on one replica); "
        "lazy_adam: Adam on the batch's rows only (work per step follows the batch, not the tables); "
        "adam: textbook Adam on dense gradients (every row's moments decay every step). "
        "Use --preset adam for Adam's learning rate and recipe")})


DEMO = {"epochs": 20, "factors": 16, "batch_size": 256, "lr": 0.02}
# the recipe of the Adam optimizers (the default before sgd: ML-100K test RMSE 0.8995 in 20 epochs)
PRESETS = {"adam": {"optimizer": "lazy_adam", "lr": 0.03, "epochs": 20, "factors": 64, "weight_decay": 0.1,
                    "init_scale": 0.01}}


MODEL = cli.ModelModule("recsys.mf_model")  # the model and its training, imported when a command runs
__getattr__ = MODEL.forward  # recsys.mf.MatrixFactorization, .build, .rating_rmse, ... from recsys.mf_model

COMMANDS = {
    "train": cli.Command(MODEL.command("train"), "train matrix factorization on the random split", trains=True),
    "evaluate": cli.Command(MODEL.command("evaluate"), "test RMSE of a trained run"),
    "predict": cli.Command(MODEL.command("predict"), "recommend unrated items for one user",
                           add_arguments=recommend_arguments),
    "export": cli.Command(MODEL.command("export"), "a SavedModel of the run: user id in, top-k unrated items out",
                          add_arguments=export_arguments),
}
SPEC = cli.Spec("recsys.mf", "Matrix factorization on MovieLens (explicit ratings)", Config, COMMANDS, DEMO, PRESETS,
                MODEL, tfds=TFDS)
main, load = SPEC.main, SPEC.load
train, evaluate, predict = SPEC.api("train"), SPEC.api("evaluate"), SPEC.api("predict")
export = SPEC.api("export")

if __name__ == "__main__":
    sys.exit(main())
