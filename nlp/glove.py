"""GloVe (the book's 14.5): weighted least squares on the log co-occurrence counts.

The co-occurrence counts x_ij come from `nlp.data.cooccurrence` (window 5, each pair at
distance d adding 1/d, both directions; sparse, counted once before training). Every nonzero
entry is one example; the loss is

    h(x_ij) (w_i . w~_j + b_i + b~_j - log x_ij)^2,   h(x) = min(1, (x / x_max)^alpha)

with x_max = 100 and alpha = 0.75, minimised with Adagrad over batches of entries in a fresh
order each epoch (the last partial batch of an epoch is left out). The vectors written to
`vectors.txt` are w + w~ (centre plus context).

    python -m nlp.glove train --data-dir ../shared/data/ptb
    python -m nlp.glove similar chip -k 5
    python -m nlp.glove evaluate --similarity wordsim353.tsv --analogies questions-words.txt

This module is the command and its `Config`; the model and its training are in `nlp.glove_model`
(imported, with TensorFlow, when a command runs; its names are also reachable here).
"""
import sys
from dataclasses import dataclass, field

from common import cli
from nlp import embeddings


@dataclass
class Config(cli.TrainConfig):
    epochs: int = 20
    batch_size: int = 4096
    lr: float = field(default=0.05, metadata=cli.positive("Adagrad learning rate"))
    embed_size: int = field(default=100, metadata=cli.at_least(1, "vector dimension"))
    window: int = field(default=5, metadata=cli.at_least(1, "co-occurrence window on each side"))
    x_max: float = field(default=100.0, metadata=cli.positive("counts at or above x_max get weight 1"))
    alpha: float = field(default=0.75, metadata=cli.positive("exponent of the weighting function"))
    min_freq: int = field(default=1, metadata=cli.at_least(1, "drop words seen fewer times"))
    corpus: str = field(default="", metadata={"help": "train on this file (one sentence a line) "
                                                      "instead of PTB", "metavar": "FILE"})


DEMO = {"epochs": 10, "embed_size": 32, "batch_size": 512}


MODEL = cli.ModelModule("nlp.glove_model")  # the model and its training, imported when a command runs
__getattr__ = MODEL.forward  # nlp.glove.GloVe, .build, .word_vectors, ... from nlp.glove_model

COMMANDS = {
    "train": cli.Command(MODEL.command("train"), "train GloVe on the co-occurrence counts", trains=True),
    **embeddings.run_commands(),
}
SPEC = cli.Spec("nlp.glove", "GloVe: word vectors from weighted least squares on co-occurrence counts", Config,
                COMMANDS, DEMO, model=MODEL)
main, load = SPEC.main, SPEC.load
train, evaluate = SPEC.api("train"), SPEC.api("evaluate")
similar, analogy = SPEC.api("similar"), SPEC.api("analogy")


if __name__ == "__main__":
    sys.exit(main())
