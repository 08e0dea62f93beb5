"""GloVe's model and training (`nlp.glove` is the command and its `Config`)."""
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from common import training
from common.data import epoch_rng
from common.distribute import sparse_steps_per_execution
from nlp import data as ndata
from nlp import embeddings
from nlp.summed_loss import SummedLossModel
from nlp.word2vec_model import batched_dataset, check_finite


@keras.saving.register_keras_serializable(package="dlsuite")
class GloVe(SummedLossModel):
    """Centre and context vectors and biases for `vocab_size` words; batches are
    `{"rows", "cols" (b,) int32, "counts" (b,) float32}`; `call(words)` gives w + w~.
    Adagrad starts its accumulators at 1, as GloVe's own code does."""

    def __init__(self, vocab_size, embed_size, x_max=100.0, alpha=0.75, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.embed_size, self.x_max, self.alpha = vocab_size, embed_size, x_max, alpha
        init = keras.initializers.RandomUniform(-0.5 / embed_size, 0.5 / embed_size)
        self.centre = self.add_weight(shape=(vocab_size, embed_size), name="centre", initializer=init)
        self.context = self.add_weight(shape=(vocab_size, embed_size), name="context", initializer=init)
        self.centre_bias = self.add_weight(shape=(vocab_size,), name="centre_bias", initializer="zeros")
        self.context_bias = self.add_weight(shape=(vocab_size,), name="context_bias", initializer="zeros")
        self.built = True

    def call(self, words):
        return tf.gather(self.centre.value, words) + tf.gather(self.context.value, words)

    def example_losses(self, batch):
        """Weighted squared error per entry `(b,)`; the step minimises their sum, so the
        learning rate is per entry (as GloVe's own code) and replicas add up to one step."""
        rows, cols, counts = batch["rows"], batch["cols"], batch["counts"]
        dots = tf.reduce_sum(tf.gather(self.centre.value, rows) * tf.gather(self.context.value, cols), axis=1)
        error = dots + tf.gather(self.centre_bias.value, rows) + tf.gather(self.context_bias.value, cols) \
            - tf.math.log(counts)
        weight = tf.minimum(1.0, (counts / self.x_max) ** self.alpha)
        return weight * error * error

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "embed_size": self.embed_size,
                "x_max": self.x_max, "alpha": self.alpha}


def build(config, vocab_size):
    model = GloVe(vocab_size, config.embed_size, config.x_max, config.alpha)
    model.compile(keras.optimizers.Adagrad(config.lr, initial_accumulator_value=1.0),
                  steps_per_execution=sparse_steps_per_execution(), jit_compile=False)
    return model


def load_corpus(ctx):
    cfg = ctx.config
    path = ndata.corpus_path(ctx.data_dir, ctx.demo, cfg.corpus)
    return ndata.build_corpus(ndata.read_sentences(path), cfg.min_freq)


def train(ctx):
    cfg = ctx.config
    corpus = load_corpus(ctx)
    tic = time.perf_counter()
    rows, cols, counts = ndata.cooccurrence(corpus, cfg.window)
    count_s = time.perf_counter() - tic
    print(f"co-occurrence: {len(counts)} nonzero entries from {len(corpus)} tokens in {count_s:.2f} s",
          file=sys.stderr)
    with ctx.strategy.scope():
        model = build(cfg, len(corpus.vocab))
    run = ctx.run()
    reference = None if ctx.demo else embeddings.reference_files()[0]
    reference = reference and embeddings.read_similarity(reference)

    def dataset(epoch):
        order = epoch_rng(cfg.seed, epoch).permutation(len(counts))
        return batched_dataset({"rows": rows[order], "cols": cols[order], "counts": counts[order]},
                               cfg.batch_size)

    def after_epoch(epoch, logs):
        check_finite(logs["loss"], epoch)
        extra = {"entries_per_s": round(len(counts) / logs["time_s"], 1)}
        vectors = word_vectors(model, corpus.vocab)
        if ctx.demo:
            extra["cluster_precision"] = embeddings.cluster_precision(vectors, ndata.DEMO_TOPICS)
        elif reference:
            extra["spearman"] = embeddings.evaluate_similarity(vectors, reference)["spearman"]
        return extra

    tic = time.perf_counter()
    history = training.fit(model, dataset, run, epochs=cfg.epochs, on_epoch_end=after_epoch)
    elapsed = time.perf_counter() - tic
    vectors = word_vectors(model, corpus.vocab)
    if run.chief:
        embeddings.save_vectors(run.file(embeddings.VECTORS_FILE), vectors.words, vectors.matrix)
    result = {"loss": round(history[-1]["loss"], 4), "vocabulary": len(corpus.vocab), "tokens": len(corpus),
              "entries": len(counts), "count_s": round(count_s, 3),
              "count_tokens_per_s": round(len(corpus) / max(count_s, 1e-9), 1), "train_s": round(elapsed, 2)}
    result.update({k: history[-1][k] for k in ("entries_per_s", "spearman", "cluster_precision") if k in history[-1]})
    return result


def word_vectors(model, vocab):
    """`embeddings.WordVectors` of w + w~ for every vocabulary word."""
    return embeddings.WordVectors(vocab.idx_to_token, model(np.arange(len(vocab), dtype=np.int32)).numpy())
