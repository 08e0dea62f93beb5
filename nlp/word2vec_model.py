"""word2vec's model and training (`nlp.word2vec` is the command and its `Config`): skip-gram and
CBOW with negative sampling, optionally with fastText's character n-grams.
"""
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from common import training
from common.data import epoch_rng
from common.distribute import sparse_step_xla, sparse_steps_per_execution
from common.errors import UsageError
from nlp import data as ndata
from nlp import embeddings
from nlp import subword
from nlp.summed_loss import SummedLossModel


@keras.saving.register_keras_serializable(package="dlsuite")
class Word2Vec(SummedLossModel):
    """Skip-gram or CBOW with negative sampling over `vocab_size` words.

    Batches (dicts): skip-gram pairs `{"inputs": centres (b,), "targets": (b, 1 + k)}`, CBOW
    `{"inputs": contexts (b, 2w), "mask": (b, 2w), "targets": (b, 1 + k)}`; `targets[:, 0]` is
    the word to predict (label 1), `targets[:, 1:]` its noise words (label 0; k = 0 when the
    noise is shared). Skip-gram with shared noise groups the pairs by centre word:
    `{"inputs": centres (b,), "contexts": (b, 2w), "mask": (b, 2w)}`, each row one centre and the
    context words it predicts (the loss is the same sum over pairs). With `shared_noise = m > 0`
    the step draws m noise words per batch from the model's `noise_cdf` (seeded by `noise_seed`
    and the step number, so every replica draws the same ones) and weights each pair's m noise
    terms by `negatives / m`.

    The loss is summed over the batch (so SGD's learning rate is per example and replicas add
    up to the single-replica step); the logged `loss` is its mean per pair. `call(words)` gives
    the input vectors `(n, embed_size)`; `vectors.txt` adds `word_out` to them (`--vectors sum`).
    """

    def __init__(self, vocab_size, embed_size, kind="skipgram", negatives=5, shared_noise=64, noise_seed=0,
                 ngram_width=0, buckets=0, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.embed_size, self.kind = vocab_size, embed_size, kind
        self.negatives, self.shared_noise, self.noise_seed = negatives, shared_noise, noise_seed
        self.ngram_width, self.buckets = ngram_width, buckets
        bound = 0.5 / embed_size
        self.word_in = self.add_weight(shape=(vocab_size, embed_size), name="word_in",
                                       initializer=keras.initializers.RandomUniform(-bound, bound))
        self.word_out = self.add_weight(shape=(vocab_size, embed_size), name="word_out", initializer="zeros")
        self.noise_cdf = self.add_weight(shape=(vocab_size,), name="noise_cdf", initializer="ones",
                                         trainable=False)
        if ngram_width:
            self.ngrams = self.add_weight(shape=(buckets, embed_size), name="ngrams",
                                          initializer=keras.initializers.RandomUniform(-bound, bound))
            self.ngram_ids = self.add_weight(shape=(vocab_size, ngram_width), name="ngram_ids", dtype="int32",
                                             initializer="zeros", trainable=False)
            self.ngram_mask = self.add_weight(shape=(vocab_size, ngram_width), name="ngram_mask",
                                              initializer="zeros", trainable=False)
        self.built = True

    def input_vectors(self, words):
        """Input vectors of word indices `words` (any shape) -> `words.shape + (embed_size,)`: the
        word's row, or with n-grams the mean of its row and its n-gram rows."""
        vectors = tf.gather(self.word_in.value, words)
        if not self.ngram_width:
            return vectors
        mask = tf.gather(self.ngram_mask.value, words)
        grams = tf.gather(self.ngrams.value, tf.gather(self.ngram_ids.value, words))
        total = vectors + tf.reduce_sum(grams * mask[..., None], axis=-2)
        return total / (1.0 + tf.reduce_sum(mask, axis=-1, keepdims=True))

    def call(self, words):
        return self.input_vectors(words)

    def hidden(self, batch):
        """The vector that scores the targets: the centre word's (skip-gram) or the mean of the
        context words' (CBOW), `(b, embed_size)`."""
        if self.kind == "skipgram":
            return self.input_vectors(batch["inputs"])
        mask = tf.cast(batch["mask"], tf.float32)
        vectors = self.input_vectors(batch["inputs"]) * mask[..., None]
        return tf.reduce_sum(vectors, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1, keepdims=True), 1.0)

    def shared_noise_words(self):
        """This step's shared noise words `(shared_noise,)` int32, the same on every replica and
        with or without XLA (`counter_uniform`)."""
        uniform = counter_uniform(self.noise_seed, self.optimizer.iterations, self.shared_noise)
        found = tf.searchsorted(self.noise_cdf.value, uniform, side="right")
        return tf.minimum(found, self.vocab_size - 1)

    def example_losses(self, batch):
        """Negative-sampling loss per example `(b,)`: -log s(u_o . h) - sum over noise log s(-u_k . h),
        summed over the example's context words for a centre-grouped skip-gram batch."""
        h = self.hidden(batch)
        if "contexts" in batch:
            return self._grouped_losses(h, batch)
        targets = batch["targets"]
        scores = tf.einsum("bd,bkd->bk", h, tf.gather(self.word_out.value, targets))
        losses = tf.nn.softplus(-scores[:, 0]) + tf.reduce_sum(tf.nn.softplus(scores[:, 1:]), axis=1)
        if self.shared_noise:
            noise = tf.gather(self.word_out.value, self.shared_noise_words())
            noise_scores = tf.matmul(h, noise, transpose_b=True)
            losses += (self.negatives / self.shared_noise) * tf.reduce_sum(tf.nn.softplus(noise_scores), axis=1)
        return losses

    def _grouped_losses(self, h, batch):
        """Skip-gram over a centre's context words `(b, c)` (mask `(b, c)`): each pair's term, plus the
        shared noise scored once per centre and counted once per pair (the same words for every pair)."""
        mask = tf.cast(batch["mask"], tf.float32)
        scores = tf.einsum("bd,bcd->bc", h, tf.gather(self.word_out.value, batch["contexts"]))
        noise = tf.gather(self.word_out.value, self.shared_noise_words())
        noise_terms = tf.reduce_sum(tf.nn.softplus(tf.matmul(h, noise, transpose_b=True)), axis=1)
        pairs = tf.reduce_sum(mask, axis=1)
        return (tf.reduce_sum(mask * tf.nn.softplus(-scores), axis=1)
                + (self.negatives / self.shared_noise) * pairs * noise_terms)

    def example_count(self, batch):
        """Pairs in `batch` (the logged loss is a mean per pair), or None: one per example."""
        return tf.reduce_sum(tf.cast(batch["mask"], tf.float32)) if "contexts" in batch else None

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "embed_size": self.embed_size,
                "kind": self.kind, "negatives": self.negatives, "shared_noise": self.shared_noise,
                "noise_seed": self.noise_seed, "ngram_width": self.ngram_width, "buckets": self.buckets}


def _mix32(x):
    """A 32-bit integer hash (`lowbias32`: xor-shift-multiply rounds), uint32 -> uint32."""
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16)) * tf.constant(0x7FEB352D, tf.uint32)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 15)) * tf.constant(0x846CA68B, tf.uint32)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))


def counter_uniform(seed, step, n):
    """`n` uniforms in [0, 1) (float32, 24 bits) for `(seed, step)`, from a counter-based hash.
    TensorFlow's stateless random ops draw other numbers under XLA than without it, so the
    XLA-compiled single-replica step and the plain multi-replica one would disagree; integer
    arithmetic gives the same numbers in both."""
    base = _mix32(tf.cast(seed, tf.uint32) + _mix32(tf.cast(step, tf.uint32)))
    bits = _mix32(base + tf.cast(tf.range(n), tf.uint32))
    return tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) / float(1 << 24)


def _noise_cdf(counts):
    if not np.any(np.asarray(counts)[1:]):  # a vocabulary read back without counts: restored later
        return np.linspace(0, 1, len(counts) + 1, dtype=np.float32)[1:]
    cdf = np.cumsum(ndata.noise_distribution(counts))
    return (cdf / cdf[-1]).astype(np.float32)


def _noise_seed(seed):
    """The seed of the in-graph shared-noise stream, apart from the per-epoch data streams."""
    return int(np.random.SeedSequence([int(seed), 1 << 20]).generate_state(1)[0] >> 1)


def build(config, vocab, steps_per_epoch=1):
    """The compiled model for `vocab` (its counts give the noise distribution). `steps_per_epoch`
    sets the length of SGD's linear decay (epochs x steps_per_epoch)."""
    grams = subword.parse_range(config.subwords)
    table = subword.ngram_table(vocab.idx_to_token, *grams, config.buckets) if grams else None
    model = Word2Vec(len(vocab), config.embed_size, config.model, config.negatives, config.shared_noise,
                     _noise_seed(config.seed), table[0].shape[1] if grams else 0,
                     config.buckets if grams else 0)
    model.noise_cdf.assign(_noise_cdf(vocab.counts))
    model.ngram_range = grams
    if grams:
        model.ngram_ids.assign(table[0])
        model.ngram_mask.assign(table[1])
    if config.optimizer == "sgd":
        total = max(1, config.epochs * steps_per_epoch)
        schedule = keras.optimizers.schedules.PolynomialDecay(config.lr, total, config.lr * 1e-4, power=1.0)
        optimizer = keras.optimizers.SGD(schedule)
    else:
        optimizer = keras.optimizers.Adam(config.lr)
    model.compile(optimizer, steps_per_execution=sparse_steps_per_execution(), jit_compile=sparse_step_xla())
    return model


def examples(config, corpus, epoch):
    """One epoch's pretraining examples as a dict of arrays (see `Word2Vec`), drawn from
    `epoch_rng(seed, epoch)`, and the number of training tokens kept by subsampling."""
    rng = epoch_rng(config.seed, epoch)
    k = 0 if config.shared_noise else config.negatives
    kept = ndata.subsample(corpus, rng, config.subsample)
    if config.model == "skipgram" and not config.shared_noise:
        centres, targets = ndata.skip_gram_examples(corpus, rng, config.window, k, kept=kept)
        return {"inputs": centres, "targets": targets}, int(kept.sum())
    contexts, mask, targets = ndata.cbow_examples(corpus, rng, config.window, k, kept=kept)
    if config.model == "skipgram":  # grouped by centre word: the shared noise is scored once per centre
        return {"inputs": targets[:, 0], "contexts": contexts, "mask": mask}, int(kept.sum())
    return {"inputs": contexts, "mask": mask, "targets": targets}, int(kept.sum())


def load_corpus(ctx):
    cfg = ctx.config
    path = ndata.corpus_path(ctx.data_dir, ctx.demo, cfg.corpus)
    return ndata.build_corpus(ndata.read_sentences(path), cfg.min_freq)


def batched_dataset(arrays, batch_size):
    """Full batches of `arrays` (a dict of equal-length arrays, in their order; the last partial
    batch is dropped). On one replica the arrays are cut into batches with NumPy, which spares
    tf.data slicing a million examples one by one (2.7 s per PTB epoch here); under a
    multi-replica strategy tf.data batches them, so the strategy can split each batch."""
    steps = len(next(iter(arrays.values()))) // batch_size
    if tf.distribute.get_strategy().num_replicas_in_sync > 1:
        data = tf.data.Dataset.from_tensor_slices(arrays).batch(batch_size, drop_remainder=True)
    else:
        data = tf.data.Dataset.from_tensor_slices(
            {k: v[:steps * batch_size].reshape(steps, batch_size, *v.shape[1:]) for k, v in arrays.items()})
    return data.prefetch(2)


def word_vectors(model, vocab, kind="input"):
    """`embeddings.WordVectors` for every vocabulary word: its input vector, or with `kind="sum"`
    (whole-word models only) input plus output vector. With n-grams, unknown words get the mean
    of their n-gram rows."""
    matrix = model(np.arange(len(vocab), dtype=np.int32)).numpy()
    if kind == "sum" and not model.ngram_width:
        matrix = matrix + model.word_out.numpy()
    oov = subword_vectors(model) if model.ngram_width else None
    return embeddings.WordVectors(vocab.idx_to_token, matrix, oov=oov)


def subword_vectors(model):
    """The n-gram rows of a model trained with `--subwords`, as `nlp.subword.SubwordVectors`."""
    return subword.SubwordVectors(model.ngrams.numpy(), *model.ngram_range)


def train(ctx):
    cfg = ctx.config
    corpus = load_corpus(ctx)
    first, first_kept = examples(cfg, corpus, 0)
    steps = len(first["inputs"]) // cfg.batch_size
    if steps == 0:
        raise UsageError(f"--batch-size {cfg.batch_size} is larger than an epoch's {len(first['inputs'])} examples; "
                         "lower it or use a larger corpus")
    with ctx.strategy.scope():
        model = build(cfg, corpus.vocab, steps)
    run = ctx.run()
    reference = None if ctx.demo else embeddings.reference_files()[0]
    reference = reference and embeddings.read_similarity(reference)
    kept = {}

    def dataset(epoch):
        arrays, kept[epoch] = (first, first_kept) if epoch == 0 else examples(cfg, corpus, epoch)
        return batched_dataset(arrays, cfg.batch_size)

    def after_epoch(epoch, logs):
        check_finite(logs["loss"], epoch)
        extra = {"tokens_per_s": round(kept[epoch] / logs["time_s"], 1)}
        vectors = word_vectors(model, corpus.vocab, cfg.vectors)
        if ctx.demo:
            extra["cluster_precision"] = embeddings.cluster_precision(vectors, ndata.DEMO_TOPICS)
        elif reference is not None:
            extra["spearman"] = embeddings.evaluate_similarity(vectors, reference)["spearman"]
        print(f"epoch {epoch + 1}: {extra}", file=sys.stderr, flush=True)
        return extra

    tic = time.perf_counter()
    history = training.fit(model, dataset, run, epochs=cfg.epochs, on_epoch_end=after_epoch)
    elapsed = time.perf_counter() - tic
    vectors = word_vectors(model, corpus.vocab, cfg.vectors)
    if run.chief:
        embeddings.save_vectors(run.file(embeddings.VECTORS_FILE), vectors.words, vectors.matrix)
        if model.ngram_width:
            vectors.oov.save(run.file(subword.TABLE_FILE))
    result = {"loss": round(history[-1]["loss"], 4), "vocabulary": len(corpus.vocab), "tokens": len(corpus),
              "train_s": round(elapsed, 2)}
    result.update({k: history[-1][k] for k in ("tokens_per_s", "spearman", "cluster_precision") if k in history[-1]})
    return result


def check_finite(loss, epoch):
    """Stop a diverged run before its checkpoint is written (one line naming the way out)."""
    training.check_finite(loss, epoch, "lower --lr (batched SGD is stable up to about 0.1 with the default batch)")


def checkpoint_vectors(run_dir, config):
    """`WordVectors` of the run `run_dir` trained with `config`, from its newest checkpoint (its vocabulary
    read from the run's vectors file), unknown words given their n-gram vector: how a `--subwords` run
    written before runs kept their n-gram table (`nlp.subword.TABLE_FILE`) is read."""
    from pathlib import Path

    from nlp.text import Vocab

    run_dir = Path(run_dir)
    vocab = Vocab.from_tokens(embeddings.load_vectors(run_dir / embeddings.VECTORS_FILE, lowercase=False).words)
    model = build(config, vocab)
    training.Run(run_dir, resume=True).restore({"model": model})
    return word_vectors(model, vocab, config.vectors)
