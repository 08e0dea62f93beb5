"""Sentiment analysis on IMDb reviews (the book's 15.2-15.3): a bidirectional LSTM or a TextCNN.

`--model birnn`: the book's two-layer bidirectional LSTM; a review is encoded as the
concatenation of the top layer's outputs at its first and its last real token (padding is
masked, so both directions read only the review), followed by a linear layer to the two
labels. `--model textcnn`: the book's TextCNN; with `--embeddings` it looks every token up in
two tables initialised from the vectors file, one trained and one kept fixed, concatenates
them, and runs 1-D convolutions of several widths (`--kernel-sizes 3,4,5`, `--channels`
each) with max-over-time pooling, dropout and a linear layer.

Data: aclImdb's folders (any folders `train/<class>/*.txt`, `test/<class>/*.txt`; `nlp.imdb`), a
`train`/`test` table in CSV, TSV or JSONL (`--columns text,label`; `nlp.text_tables`), or TFDS's
`imdb_reviews` (`--tfds`); the class names (index order) are saved as the run's `classes.json`.

Embeddings start from a vectors file in GloVe text format as in `nlp.nli` (`--embeddings
PATH`, frozen with `--freeze-embeddings`); OOV tokens are counted and reported. A seeded
`--val-ratio` of the training reviews is held back for the per-epoch validation accuracy;
the test split is scored once at the end of `train` and by `evaluate`.

    python -m nlp.sentiment train --data-dir ../shared/data/aclImdb_subset \\
        --embeddings ../shared/data/glove.6b.50d_top20k/vec.txt --model textcnn
    python -m nlp.sentiment evaluate
    python -m nlp.sentiment predict "a great movie, i loved it"
    python -m nlp.sentiment train --demo

This module is the command and its `Config`; the models, their training and evaluation are in
`nlp.sentiment_model` (imported, with TensorFlow, when a command runs; its names are also reachable
here).
"""
import sys
from dataclasses import dataclass, field

from common import cli
from common.export import add_arguments as export_arguments
from common.errors import UsageError
from nlp import classify, text_tables


@dataclass
class Config(cli.TrainConfig):
    epochs: int = 10  # measured for the default TextCNN; the BiRNN reaches its result in 5 (docs/nlp.md)
    batch_size: int = 64
    lr: float = 0.001
    model: str = field(default="textcnn", metadata={
        "choices": ["birnn", "textcnn"], "help": "two-layer bidirectional LSTM, or TextCNN"})
    embedding_dim: int = field(default=50, metadata=cli.at_least(1, "word vector dimension"))
    hidden: int = field(default=100, metadata=cli.at_least(1, "LSTM units per direction (birnn)"))
    layers: int = field(default=2, metadata=cli.at_least(1, "stacked bidirectional LSTM layers (birnn)"))
    kernel_sizes: tuple = field(default=(3, 4, 5), metadata=cli.int_list("convolution widths (textcnn)"))
    channels: tuple = field(default=(100, 100, 100), metadata=cli.int_list(
        "output channels of each convolution width (textcnn)"))
    dropout: float = field(default=0.5, metadata=cli.bounds("[0, 1)", "dropout rate (textcnn)"))
    max_len: int = classify.max_len_field(500, "review")
    min_freq: int = classify.min_freq_field(5)
    embeddings: str = classify.embeddings_field()
    freeze_embeddings: bool = classify.freeze_embeddings_field(False, "(trained) embedding table")
    val_ratio: float = classify.val_ratio_field(0.1, "reviews")
    format: str = field(default="auto", metadata={
        "choices": ["auto", "folders", "table"], "help": "--data-dir's layout: folders (aclImdb: train/ and test/ "
        "holding a folder of *.txt per class), table (train and test .csv/.tsv/.jsonl), or auto-detected"})
    columns: str = field(default="text,label", metadata={
        "help": "a table's text column and label column", "metavar": "TEXT,LABEL"})

    def validate(self):
        super().validate()
        text_tables.parse_columns(self.columns)
        if self.model == "textcnn" and len(self.kernel_sizes) != len(self.channels):
            raise UsageError(f"--kernel-sizes has {len(self.kernel_sizes)} widths but --channels has "
                             f"{len(self.channels)} counts; give one count per width")


DEMO = {"epochs": 4, "embedding_dim": 32, "hidden": 32, "channels": (32, 32, 32), "max_len": 128,
        "min_freq": 1}
_BOOK = {"embedding_dim": 100, "max_len": 500, "min_freq": 5, "batch_size": 64, "epochs": 5,
         "embeddings": "glove.6b.100d"}
PRESETS = {"book": {**_BOOK, "model": "birnn", "hidden": 100, "layers": 2, "lr": 0.01},
           "book-textcnn": {**_BOOK, "model": "textcnn", "kernel_sizes": (3, 4, 5), "channels": (100, 100, 100),
                            "dropout": 0.5, "lr": 0.001}}


def _predict_arguments(parser):
    parser.add_argument("text", help="the review to classify")


TFDS = {"imdb_reviews": "the 25k/25k IMDb reviews"}  # --tfds: the TFDS datasets train/evaluate read
MODEL = cli.ModelModule("nlp.sentiment_model")  # the models and their training, imported when a command runs
__getattr__ = MODEL.forward  # nlp.sentiment.BiRNN, .TextCNN, .build, .test_accuracy, ... from nlp.sentiment_model

COMMANDS = {
    "train": cli.Command(MODEL.command("train"), "train a sentiment classifier (BiRNN or TextCNN) on IMDb reviews",
                         trains=True),
    "evaluate": cli.Command(MODEL.command("evaluate"), "test accuracy of a trained run"),
    "predict": cli.Command(MODEL.command("predict"), "label and probability of one review",
                           add_arguments=_predict_arguments),
    "export": cli.Command(MODEL.command("export"), "a SavedModel of the run reading raw reviews",
                          add_arguments=export_arguments),
}
SPEC = cli.Spec("nlp.sentiment", "Sentiment analysis on IMDb: bidirectional LSTM or TextCNN", Config, COMMANDS, DEMO,
                PRESETS, MODEL, tfds=TFDS)
main, load = SPEC.main, SPEC.load
train, evaluate, predict = SPEC.api("train"), SPEC.api("evaluate"), SPEC.api("predict")
export = SPEC.api("export")


if __name__ == "__main__":
    sys.exit(main())
