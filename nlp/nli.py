"""Natural language inference on SNLI (the book's 15.4-15.5): the decomposable attention model.

Attend: the premise and hypothesis tokens are embedded and passed through an MLP f; the
scores e_ij = f(a_i) . f(b_j) align each premise token with a soft mixture of hypothesis
tokens (beta_i) and vice versa (alpha_j), padding masked out. Compare: an MLP g turns
[a_i, beta_i] and [b_j, alpha_j] into comparison vectors (the book's `--compare concat`; the
default `--compare match` also gives g the difference and the product, a_i - beta_i and
a_i * beta_i, as ESIM (Chen et al. 2017) does: on 8.4k SNLI pairs it lifts held-back accuracy
from 0.596 to 0.613). Aggregate: the two sums of those
vectors, concatenated, go through an MLP h and a linear layer to the three labels
(entailment, contradiction, neutral).

Data (`nlp.snli`): SNLI's official `.txt`, SNLI's or MultiNLI's JSONL, InferSent's `s1/s2/labels`
files (auto-detected, or `--format`), or TFDS's `snli` / `multi_nli` (`--tfds`).

The embedding table starts from a vectors file in GloVe text format (`--embeddings PATH`:
real GloVe, or `vectors.txt` of an `nlp.word2vec` / `nlp.glove` run), frozen by default
(`--no-freeze-embeddings` trains it); the vocabulary tokens the file lacks are counted and
reported.

    python -m nlp.nli train --data-dir ../shared/data/snli --holdout 0.1 \\
        --embeddings ../shared/data/glove.6b.50d_top20k/vec.txt
    python -m nlp.nli evaluate --split holdout      # accuracy, per-class precision/recall, confusion matrix
    python -m nlp.nli predict --premise "a man is sleeping ." --hypothesis "nobody is sleeping ."
    python -m nlp.nli train --demo                  # seconds, offline

The run directory holds `vocab.txt` (one token a line, in index order) beside the usual
checkpoints, `metrics.json` (loss, accuracy, val_accuracy per epoch) and
`model.keras`.

This module is the command and its `Config`; the models, their training and evaluation are in
`nlp.nli_model` (imported, with TensorFlow, when a command runs; its names are also reachable here).
"""
import sys
from dataclasses import dataclass, field

from common import cli
from common.export import add_arguments as export_arguments
from common.errors import UsageError
from nlp import classify


COMPARE_FEATURES = ("concat", "match")


@dataclass
class Config(cli.TrainConfig):
    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.004
    model: str = field(default="attention", metadata={
        "choices": ["attention", "bert"], "help": "decomposable attention, or a fine-tuned BERT"})
    embedding_dim: int = field(default=50, metadata=cli.at_least(1, "word vector dimension (attention)"))
    hidden: int = field(default=200, metadata=cli.at_least(1, "width of the f, g and h MLPs (attention)"))
    dropout: float = field(default=0.2, metadata=cli.bounds("[0, 1)", "dropout before each MLP layer"))
    compare: str = field(default="match", metadata={
        "choices": list(COMPARE_FEATURES), "help": "what the compare MLP g sees for token a_i and its "
        "aligned beta_i: concat [a, beta] (the book) or match [a, beta, a - beta, a * beta] as in ESIM"})
    max_len: int = classify.max_len_field(50, "sentence")
    min_freq: int = classify.min_freq_field(1)
    embeddings: str = classify.embeddings_field()
    freeze_embeddings: bool = classify.freeze_embeddings_field(True)
    holdout: float = field(default=0.0, metadata=cli.bounds(
        "[0, 1)", "hold this seeded share of the training split back as the 'holdout' evaluation split"))
    val_ratio: float = classify.val_ratio_field(0.05, "pairs")
    format: str = field(default="auto", metadata={
        "choices": ["auto", "official", "jsonl", "infersent"], "help": "--data-dir's layout: official "
        "snli_1.0_<split>.txt, SNLI's or MultiNLI's <split>.jsonl, InferSent's s1/s2/labels.<split>, or auto "
        "(each split from the first of these that has it)"})
    bert_run: str = field(default="", metadata={
        "help": "--model bert: an nlp.bert pretrain run directory to fine-tune", "metavar": "DIR"})
    bert_preset: str = field(default="", metadata={
        "help": "--model bert: a local keras-hub BERT preset directory to fine-tune", "metavar": "DIR"})

    def validate(self):
        super().validate()
        if self.model == "bert" and bool(self.bert_run) == bool(self.bert_preset):
            raise UsageError("--model bert needs exactly one of --bert-run DIR and --bert-preset DIR")
        if self.model == "attention" and (self.bert_run or self.bert_preset):
            raise UsageError("--bert-run/--bert-preset only apply with --model bert")


DEMO = {"epochs": 8, "hidden": 64, "embedding_dim": 32, "batch_size": 64, "lr": 0.004}
PRESETS = {"book": {"embedding_dim": 100, "hidden": 200, "lr": 0.001, "epochs": 4, "batch_size": 256,
                    "compare": "concat", "min_freq": 5, "freeze_embeddings": False, "embeddings": "glove.6b.100d"}}


def _evaluate_arguments(parser):
    parser.add_argument("--split", help="split to score: train, dev, test or holdout (default: what train "
                                        "scored: holdout when trained with --holdout, else test, else dev)")


def _predict_arguments(parser):
    parser.add_argument("--premise", required=True, help="the premise sentence")
    parser.add_argument("--hypothesis", required=True, help="the hypothesis sentence")


TFDS = {"snli": "SNLI 1.0", "multi_nli": "MultiNLI 1.0"}  # --tfds: the TFDS datasets train/evaluate read
MODEL = cli.ModelModule("nlp.nli_model")  # the models and their training, imported when a command runs
__getattr__ = MODEL.forward  # nlp.nli.DecomposableAttention, .build, .encode, .scores, ... from nlp.nli_model

COMMANDS = {
    "train": cli.Command(MODEL.command("train"), "train the decomposable attention model (or fine-tune BERT) on SNLI",
                         trains=True),
    "evaluate": cli.Command(MODEL.command("evaluate"), "accuracy, per-class precision/recall and confusion matrix on "
                            "a split", add_arguments=_evaluate_arguments),
    "predict": cli.Command(MODEL.command("predict"), "label and probabilities of one premise/hypothesis pair",
                           add_arguments=_predict_arguments),
    "export": cli.Command(MODEL.command("export"), "a SavedModel of the run reading raw sentence pairs",
                          add_arguments=export_arguments),
}
SPEC = cli.Spec("nlp.nli", "Natural language inference on SNLI: decomposable attention or fine-tuned BERT", Config,
                COMMANDS, DEMO, PRESETS, MODEL, tfds=TFDS)
main, load = SPEC.main, SPEC.load
train, evaluate, predict = SPEC.api("train"), SPEC.api("evaluate"), SPEC.api("predict")
export = SPEC.api("export")


if __name__ == "__main__":
    sys.exit(main())
