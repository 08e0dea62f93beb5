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
    python -m recsys.fm train --dataset table --data-dir D --numeric price --categorical ad,site  # your CSV
    python -m recsys.fm evaluate                     # the newest run, on the data it was trained on
    python -m recsys.fm predict --data FILE          # click probability of each line (the data's format)
"""
import sys
from dataclasses import dataclass, field

from common import cli
from common.export import add_arguments as export_arguments
from common.errors import UsageError
from recsys.ctr import CTR_THRESHOLD, click_arguments


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
        "choices": ["ctr", "criteo", "table"], "help": (
            "ctr: the book's train.csv/test.csv; criteo: one Criteo file (Kaggle train.txt layout), streamed; "
            "table: a CSV/TSV/Parquet file with --label, --numeric and --categorical columns")})
    data_file: str = field(default="train.txt", metadata={"help": (
        "Criteo file inside --data-dir; for --dataset table the table (default: its only .csv/.tsv/.parquet)")})
    label: str = field(default="label", metadata={"help": "--dataset table: the 0/1 click column"})
    numeric: str = field(default="", metadata={"metavar": "A,B,...", "help": (
        "--dataset table: numeric columns (bucketed as Criteo's integers: floor(ln(v)^2) above 2)")})
    categorical: str = field(default="", metadata={"metavar": "C,D,...", "help": (
        "--dataset table: categorical columns (values of any type)")})
    format: str = field(default="auto", metadata={"choices": ["auto", "csv", "tsv", "parquet"], "help": (
        "--dataset table: the table's format (auto: from its extension)")})
    threshold: int = field(default=CTR_THRESHOLD, metadata=cli.at_least(
        1, "values rarer than this share a bucket"))
    test_ratio: float = field(default=0.1, metadata=cli.bounds(
        "(0, 1)", "Criteo or table rows held out for the test set"))
    val_ratio: float = field(default=0.1, metadata=cli.bounds(
        "(0, 1)", "training rows held out for the per-epoch validation AUC and log loss"))

    def validate(self):
        super().validate()
        table = self.numeric or self.categorical or self.format != "auto"
        if self.dataset == "table" and not (self.numeric or self.categorical):
            raise UsageError("--dataset table needs its feature columns: --numeric A,B and/or --categorical C,D")
        if self.dataset != "table" and table:
            raise UsageError("--numeric, --categorical and --format describe a table: add --dataset table")


DEMO = {}


MODEL = cli.ModelModule("recsys.fm_model")  # the model and its training, imported when a command runs
__getattr__ = MODEL.forward  # recsys.fm.FactorizationMachine, .build, .ctr_report, ... from recsys.fm_model

COMMANDS = {
    "train": cli.Command(MODEL.command("train"), "train a factorization machine on click data", trains=True),
    "evaluate": cli.Command(MODEL.command("evaluate"), "test AUC and log loss of a trained run"),
    "predict": cli.Command(MODEL.command("predict"), "click probabilities of rows given as in the data",
                           add_arguments=click_arguments, reads_data=False),
    "export": cli.Command(MODEL.command("export"), "a SavedModel of the run: a row of raw values in, click "
                          "probability out", add_arguments=export_arguments, reads_data=False),
}
SPEC = cli.Spec("recsys.fm", "Factorization machine for click-through rate", Config, COMMANDS, DEMO, model=MODEL)
main, load = SPEC.main, SPEC.load
train, evaluate, predict = SPEC.api("train"), SPEC.api("evaluate"), SPEC.api("predict")
export = SPEC.api("export")


if __name__ == "__main__":
    sys.exit(main())
