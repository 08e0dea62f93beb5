"""DeepFM (the book's 16.10): an FM and an MLP sharing the field embeddings, logits added.

Same data, flags and commands as `recsys.fm`, plus the deep component's widths and dropout.

    python -m recsys.deepfm train --demo
    python -m recsys.deepfm evaluate       # the newest run, on the data it was trained on
    python -m recsys.deepfm predict --row LINE             # as recsys.fm predict
"""
import sys
from dataclasses import dataclass, field

from common import cli
from common.export import add_arguments as export_arguments
from recsys import fm
from recsys.ctr import click_arguments


@dataclass
class Config(fm.Config):
    hidden: tuple = field(default=(32,), metadata=cli.int_list("MLP layer widths"))
    dropout: float = field(default=0.0, metadata=cli.bounds("[0, 1)", "dropout after each MLP layer while training"))


DEMO = dict(fm.DEMO)


MODEL = cli.ModelModule("recsys.deepfm_model")  # the model and its training, imported when a command runs
__getattr__ = MODEL.forward  # recsys.deepfm.build, .restore, .model_kwargs from recsys.deepfm_model

COMMANDS = {
    "train": cli.Command(MODEL.command("train"), "train DeepFM on click data", trains=True),
    "evaluate": cli.Command(MODEL.command("evaluate"), "test AUC and log loss of a trained run"),
    "predict": cli.Command(MODEL.command("predict"), "click probabilities of rows given as in the data",
                           add_arguments=click_arguments, reads_data=False),
    "export": cli.Command(MODEL.command("export"), "a SavedModel of the run: a row of raw values in, click "
                          "probability out", add_arguments=export_arguments, reads_data=False),
}
SPEC = cli.Spec("recsys.deepfm", "DeepFM for click-through rate", Config, COMMANDS, DEMO, model=MODEL)
main, load = SPEC.main, SPEC.load
train, evaluate, predict = SPEC.api("train"), SPEC.api("evaluate"), SPEC.api("predict")
export = SPEC.api("export")


if __name__ == "__main__":
    sys.exit(main())
