"""word2vec (the book's 14.1-14.4): skip-gram or CBOW with negative sampling, optionally with
fastText's character n-grams (14.6), trained on the Penn Treebank.

Each epoch draws fresh pretraining data (`nlp.data`: subsampling t = 1e-4, a random window of
1..5, unigram^0.75 noise) and makes one pass of sparse updates: only the embedding rows a batch
touches change (the gradients are `tf.IndexedSlices`; SGD applies them as scatter updates).

The default recipe is word2vec's own (per-example SGD with a learning rate falling linearly
to zero), batched: a batch holds `--batch-size` centre words, each with all the context words
of its window (about 6 pairs a centre), and shares its noise: every pair is scored against the
same `--shared-noise 64` noise words drawn for the batch from unigram^0.75, each weighted K/64,
an unbiased estimate of the K = 5 noise terms per pair. The shared noise is scored once per
centre word, a (batch x 64) matrix product, instead of 5 more gathered rows per pair.
`vectors.txt` holds each word's input plus output vector (`--vectors sum`, Levy et al. 2015:
steadier similarity scores than the input vectors alone). On one replica the step is XLA-compiled.
`--shared-noise 0` scores each pair against its own K noise words, as the book does (a batch is
then `--batch-size` pairs); `--preset book` is the book's whole recipe (Adam 0.002, batch 512
pairs, 5 epochs, min frequency 10, input vectors).

    python -m nlp.word2vec train --data-dir ../shared/data/ptb          # the real PTB
    python -m nlp.word2vec train --demo                                 # seconds, offline
    python -m nlp.word2vec similar chip -k 5                            # newest run
    python -m nlp.word2vec analogy man king woman
    python -m nlp.word2vec evaluate --similarity wordsim353.tsv --analogies questions-words.txt

The run directory holds `vectors.txt` (GloVe text format, one line per vocabulary word), with
`--subwords` `subwords.npz` (the n-gram rows, `nlp.subword.SubwordVectors`: what gives unknown
words a vector), `model.keras`, `checkpoints/`, `metrics.json` (loss, tokens/s and, where gensim's
test files are installed, the WordSim353 Spearman after every epoch) and `config.json`.

This module is the command and its `Config`; the model and its training are in
`nlp.word2vec_model` (imported, with TensorFlow, when a command runs; its names are also reachable
here).
"""
import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path

from common import cli
from nlp import embeddings
from nlp import subword


@dataclass
class Config(cli.TrainConfig):
    epochs: int = 6
    batch_size: int = field(default=170, metadata=cli.at_least(1, "centre words per batch, each with its "
                                                              "context words (pairs with --shared-noise 0)"))
    lr: float = field(default=0.1, metadata=cli.positive(
        "learning rate (SGD: per example, falling linearly to 0 over the run; Adam: the step size)"))
    model: str = field(default="skipgram", metadata={"choices": ["skipgram", "cbow"],
                                                     "help": "skip-gram (centre predicts context) or CBOW"})
    embed_size: int = field(default=100, metadata=cli.at_least(1, "vector dimension"))
    window: int = field(default=5, metadata=cli.at_least(1, "largest context window on each side"))
    negatives: int = field(default=5, metadata=cli.at_least(1, "K, noise words per context word"))
    shared_noise: int = field(default=64, metadata=cli.bounds(
        "[0, inf)", "noise words drawn per batch and shared by its pairs (0: K of its own per pair)"))
    subsample: float = field(default=1e-4, metadata=cli.bounds("[0, 1]", "subsampling threshold t (0: off)"))
    min_freq: int = field(default=1, metadata=cli.at_least(1, "drop words seen fewer times"))
    optimizer: str = field(default="sgd", metadata={"choices": ["sgd", "adam"],
                                                    "help": "sparse SGD with linear decay, or Adam"})
    subwords: str = field(default="", metadata={"help": "fastText character n-grams, e.g. 3-6 ('' off)",
                                                "metavar": "MIN-MAX"})
    buckets: int = field(default=200_000, metadata=cli.at_least(1, "hash buckets of the n-gram table"))
    corpus: str = field(default="", metadata={"help": "train on this file (one sentence a line) "
                                                      "instead of PTB", "metavar": "FILE"})
    vectors: str = field(default="sum", metadata={
        "choices": ["sum", "input"], "help": "what vectors.txt holds for a word: the sum of its input and "
        "output vectors (Levy et al. 2015) or its input vector only (with --subwords always input: an "
        "unknown word has n-gram rows but no output row)"})

    def validate(self):
        super().validate()
        subword.parse_range(self.subwords)


DEMO = {"epochs": 2, "embed_size": 32, "batch_size": 96, "lr": 0.05, "subsample": 0.01}
PRESETS = {"book": {"embed_size": 100, "batch_size": 512, "optimizer": "adam", "lr": 0.002, "epochs": 5,
                    "shared_noise": 0, "min_freq": 10, "vectors": "input"}}


MODEL = cli.ModelModule("nlp.word2vec_model")  # the model and its training, imported when a command runs
__getattr__ = MODEL.forward  # nlp.word2vec.Word2Vec, .build, .examples, .word_vectors, ... from nlp.word2vec_model


def load_run(run_dir):
    """`WordVectors` of a run (`nlp.embeddings.load_run`); a `--subwords` run written before runs kept
    their n-gram table (`nlp.subword.TABLE_FILE`) is read from its newest checkpoint."""
    run_dir = Path(run_dir)
    if not (run_dir / embeddings.VECTORS_FILE).is_file() or (run_dir / subword.TABLE_FILE).is_file():
        return embeddings.load_run(run_dir)
    saved = embeddings.run_config(run_dir)
    if not saved.get("subwords"):
        return embeddings.load_run(run_dir)
    config = Config(**{f.name: saved[f.name] for f in dataclasses.fields(Config) if f.name in saved})
    return MODEL().checkpoint_vectors(run_dir, config)


COMMANDS = {
    "train": cli.Command(MODEL.command("train"), "train word2vec (skip-gram or CBOW) with negative sampling",
                         trains=True),
    **embeddings.run_commands(load_run),
}
SPEC = cli.Spec("nlp.word2vec", "word2vec: skip-gram / CBOW word embeddings with negative sampling", Config,
                COMMANDS, DEMO, PRESETS, MODEL)
main, load = SPEC.main, SPEC.load
train, evaluate = SPEC.api("train"), SPEC.api("evaluate")
similar, analogy = SPEC.api("similar"), SPEC.api("analogy")


if __name__ == "__main__":
    sys.exit(main())
