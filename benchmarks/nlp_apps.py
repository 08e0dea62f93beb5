"""NLP applications: training throughput of the NLI decomposable attention model and of the
sentiment BiRNN and TextCNN, in training examples (sentence pairs / reviews) per second.

Each model is built as its trainer builds it (default hyperparameters), fed encoded real data
(`--snli DIR`, `--imdb DIR`) or the offline demo sets, and timed over `--steps` optimizer steps
of Keras `fit` after one warm-up call (graph tracing excluded); one JSON line per model
(benchmarks/harness.py), the last one with the TextCNN/BiRNN speed ratio.

    python benchmarks/nlp_apps.py --snli ../shared/data/snli --imdb ../shared/data/aclImdb_subset
    python benchmarks/nlp_apps.py            # the demo sets
"""
import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import measure  # noqa: E402


def _timed_fit(model, inputs, labels, batch_size, steps):
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((inputs, labels)).repeat().batch(batch_size).take(steps).cache()
    return lambda: model.fit(data, epochs=1, verbose=0)


def nli_rate(snli_dir, steps):
    from nlp import nli, snli

    config = nli.Config()
    splits = snli.load_splits(snli.snli_directory(snli_dir, demo=snli_dir is None), holdout=0.1)
    vocab = nli.build_vocab(splits.train, config.min_freq)
    model = nli.build(config, len(vocab), vocab[nli.PAD])
    fn = _timed_fit(model, nli.encode(vocab, splits.train, config.max_len), splits.train.labels, config.batch_size,
                    steps)
    return measure("nli decomposable attention train", fn, steps * config.batch_size, "sentence pairs",
                   data="demo" if snli_dir is None else str(snli_dir), batch_size=config.batch_size,
                   max_len=config.max_len)


def imdb_train(imdb_dir):
    """`(vocab, ids, labels)`: the IMDb training reviews read, their vocabulary built and the reviews
    encoded once, for both sentiment models (the vocabulary and padding depend only on `min_freq` and
    `max_len`, whose defaults do not depend on `--model`)."""
    from nlp import imdb, sentiment
    from nlp.text import Vocab, encode_padded

    config = sentiment.Config()
    reviews = imdb.read_imdb(imdb.imdb_directory(imdb_dir, demo=imdb_dir is None), "train")
    vocab = Vocab(reviews.tokens, min_freq=config.min_freq, reserved_tokens=[sentiment.PAD])
    return vocab, encode_padded(vocab, reviews.tokens, config.max_len, vocab[sentiment.PAD]), reviews.labels


def sentiment_rate(kind, data, imdb_dir, steps):
    """Training speed of the sentiment `kind` model on `data` (`imdb_train`'s, read from `imdb_dir`)."""
    from nlp import sentiment

    vocab, ids, labels = data
    config = replace(sentiment.Config(), model=kind)
    model = sentiment.build(config, len(vocab), vocab[sentiment.PAD])
    fn = _timed_fit(model, ids, labels, config.batch_size, steps)
    return measure(f"sentiment {kind} train", fn, steps * config.batch_size, "reviews",
                   data="demo" if imdb_dir is None else str(imdb_dir), batch_size=config.batch_size,
                   max_len=config.max_len, repeat=2)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--snli", type=Path, help="SNLI directory (default: the demo set)")
    parser.add_argument("--imdb", type=Path, help="folder holding aclImdb/ (default: the demo set)")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps timed per model")
    args = parser.parse_args(argv)
    import common  # noqa: F401  (TensorFlow start-up noise silenced)
    from common.training import set_seed

    set_seed(0)
    nli_rate(args.snli, args.steps)
    reviews = imdb_train(args.imdb)  # read and encoded once for both models
    birnn = sentiment_rate("birnn", reviews, args.imdb, args.steps)
    textcnn = sentiment_rate("textcnn", reviews, args.imdb, args.steps)
    from benchmarks.harness import report

    report("sentiment textcnn / birnn training speed", "ratio", textcnn["rate"] / birnn["rate"], 1.0)


if __name__ == "__main__":
    main()
