"""The book's GAN on Gaussian data: its models, input pipeline, training and evaluation (`gan.gan` is
its command and configuration).

`GAN` is the alternating-update model both GANs of this domain share: its `train_step`
takes a batch `(real, z)` (the latent noise comes from the seeded input pipeline, so a
run is reproducible and splits over replicas like the data), updates the discriminator
on real and fake, then the generator through the updated discriminator.
"""
import keras
import numpy as np
import tensorflow as tf

from common import training
from common.data import epoch_seed
from common.distribute import per_replica_batch_size, scale_loss
from common.plots import plt, save_figure
from gan.diffaugment import diff_augment

A = np.array([[1.0, 2.0], [-0.1, 0.5]], np.float32)
B = np.array([1.0, 2.0], np.float32)


def bce_with_logits(logits, target):
    """Mean binary cross-entropy of logits (batch, 1) against a constant 0/1 target.

    Keras' `binary_crossentropy` function, averaged over the replica's batch. (The
    `keras.losses.BinaryCrossentropy` object is not used: inside a replica context it
    already divides by the number of replicas, and `GAN.train_step` scales once itself.)
    """
    labels = tf.fill(tf.shape(logits), tf.cast(target, logits.dtype))
    return tf.reduce_mean(keras.losses.binary_crossentropy(labels, logits, from_logits=True))


def discriminator_loss(real_logits, fake_logits, kind="bce"):
    """The discriminator's loss on logits (batch, 1) of real and fake images: "bce", the book's mean
    cross-entropy (real -> 1, fake -> 0, averaged over the two); "hinge", mean relu(1 - real) + mean relu(1 + fake)."""
    if kind == "hinge":
        return tf.reduce_mean(tf.nn.relu(1 - real_logits)) + tf.reduce_mean(tf.nn.relu(1 + fake_logits))
    return (bce_with_logits(real_logits, 1) + bce_with_logits(fake_logits, 0)) / 2


def generator_loss(fake_logits, kind="bce"):
    """The generator's loss on the discriminator's logits (batch, 1) of its images: "bce", cross-entropy
    against 1 (the non-saturating loss); "hinge", -mean logit."""
    if kind == "hinge":
        return -tf.reduce_mean(fake_logits)
    return bce_with_logits(fake_logits, 1)


class GAN(keras.Model):
    """A generator and a discriminator trained by alternating Adam steps (D2L 17.1).

    Subclasses set `self.generator` (z (batch, latent) -> x) and `self.discriminator`
    (x -> logits (batch, 1)) in `__init__`. `compile(d_optimizer, g_optimizer)`. Optional
    small-data parts a subclass may set: `augment_policy` (DiffAugment names; the batches
    then carry uniforms (batch, 3, UNIFORMS)), `loss_kind` ("bce" or "hinge") and
    `ema_generator` with `ema_decay` (an exponential moving average of the generator's
    weights, updated after every step).
    """

    augment_policy = ()
    loss_kind = "bce"
    ema_generator = None
    ema_decay = 0.0

    def compile(self, d_optimizer, g_optimizer, **kwargs):
        super().compile(**kwargs)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        # create the slot variables now, under the caller's strategy scope (lazy creation
        # inside a replica context fails under MirroredStrategy)
        d_optimizer.build(self.discriminator.trainable_variables)
        g_optimizer.build(self.generator.trainable_variables)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker]

    def get_compile_config(self):
        """The two optimizers, so `keras.models.load_model` gives a compiled GAN (Keras cannot replay a custom compile)."""
        if not self.compiled:
            return {}
        return {name: keras.optimizers.serialize(getattr(self, name)) for name in ("d_optimizer", "g_optimizer")}

    def compile_from_config(self, config):
        if config.get("d_optimizer") and config.get("g_optimizer"):  # files saved before hold Keras' own config
            self.compile(**{name: keras.optimizers.deserialize(config[name]) for name in ("d_optimizer", "g_optimizer")},
                         jit_compile=False)

    def call(self, z, training=False):
        return self.generator(z, training=training)

    def train_step(self, data):
        """One discriminator step, then one generator step, on `data = (real, z[, u])`.

        The fake batch is generated once and reused by both steps (the book recomputes
        it); the generator's loss goes through the just-updated discriminator, as in
        the book. With an augmentation policy, uniforms u[:, 0], u[:, 1], u[:, 2] drive
        the augmentation of the real and fake images of the discriminator's step and of
        the fake images of the generator's step. Losses are per-replica means, scaled
        for the cross-replica sum.
        """
        real, z, *uniforms = data

        def augment(x, k):
            return diff_augment(x, uniforms[0][:, k], self.augment_policy) if self.augment_policy else x

        g_vars = self.generator.trainable_variables
        d_vars = self.discriminator.trainable_variables
        with tf.GradientTape() as g_tape:
            fake = self.generator(z, training=True)
            with tf.GradientTape() as d_tape:
                real_logits = self.discriminator(augment(real, 0), training=True)
                fake_logits = self.discriminator(augment(tf.stop_gradient(fake), 1), training=True)
                d_loss = discriminator_loss(real_logits, fake_logits, self.loss_kind)
                scaled_d_loss = scale_loss(d_loss)
            with g_tape.stop_recording():
                self.d_optimizer.apply_gradients(zip(d_tape.gradient(scaled_d_loss, d_vars), d_vars))
            g_loss = generator_loss(self.discriminator(augment(fake, 2), training=True), self.loss_kind)
            scaled_g_loss = scale_loss(g_loss)
        self.g_optimizer.apply_gradients(zip(g_tape.gradient(scaled_g_loss, g_vars), g_vars))
        if self.ema_generator is not None:
            self._update_ema()
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return {"d_loss": self.d_loss_tracker.result(), "g_loss": self.g_loss_tracker.result()}

    def _update_ema(self):
        """ema <- d ema + (1 - d) w for every trainable generator weight, with the warm-up
        d = min(ema_decay, (1 + t) / (10 + t)) at generator step t (as tf.train.ExponentialMovingAverage).
        The average's batch-norm statistics are not averaged: `standing_statistics` computes them for its weights."""
        t = tf.cast(self.g_optimizer.iterations, tf.float32)
        decay = tf.minimum(self.ema_decay, (1 + t) / (10 + t))
        for average, weight in zip(self.ema_generator.trainable_weights, self.generator.trainable_weights,
                                   strict=True):
            average.assign(decay * average + (1 - decay) * weight)


def standing_statistics(generator, z):
    """Set every batch norm's moving mean and variance of `generator` to the batch statistics of one
    training-mode pass over noise z (n, latent_dim) ("standing statistics", as BigGAN samples its
    averaged generator): averaged weights need the statistics of their own activations, and the
    raw generator's (or averaged ones) do not fit them. A function of the weights and z alone."""
    norms = [layer for layer in generator.layers if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    try:
        for layer in norms:
            layer.momentum = 0.0
        generator(z, training=True)
    finally:
        for layer, momentum in zip(norms, momenta):
            layer.momentum = momentum


def gan_dataset(real, batch_size, latent_dim, seed, epoch, transform=None, uniforms=0):
    """tf.data pipeline of `(real batch, z batch[, u batch])` for one epoch, fully seeded by (seed, epoch).

    `real` (n, ...) float32 is shuffled with `epoch_seed(seed, epoch)` (the same order however
    often the dataset is iterated, so a distributed iterator sees what a local one sees),
    batched with the global `batch_size` (last partial batch dropped), passed through
    `transform(x, batch_seed)` (e.g. a random flip) and paired with standard-normal z
    (batch, latent_dim); batch i's stateless seed is (epoch_seed, i). `uniforms` > 0 adds
    u ~ U[0, 1) (batch, 3, uniforms) for the augmentation of the three discriminator calls.
    """
    shuffle_seed = epoch_seed(seed, epoch)

    def add_noise(i, x):
        batch_seed = tf.stack([tf.constant(shuffle_seed, tf.int64), i])
        if transform is not None:
            x = transform(x, batch_seed)
        z = tf.random.stateless_normal((batch_size, latent_dim), seed=batch_seed + [0, 1 << 30])
        if not uniforms:
            return x, z
        return x, z, tf.random.stateless_uniform((batch_size, 3, uniforms), seed=batch_seed + [0, 2 << 30])

    ds = (tf.data.Dataset.from_tensor_slices(real).shuffle(len(real), seed=shuffle_seed, reshuffle_each_iteration=False)
          .batch(batch_size, drop_remainder=True).enumerate().map(add_noise, num_parallel_calls=tf.data.AUTOTUNE))
    return ds.prefetch(tf.data.AUTOTUNE)


def gaussian_data(n, seed):
    """The book's data X = Z A + b, (n, 2) float32, Z ~ N(0, I) seeded."""
    z = np.random.default_rng(seed).normal(size=(n, 2)).astype(np.float32)
    return z @ A + B


@keras.saving.register_keras_serializable(package="dlsuite")
class GaussianGAN(GAN):
    """Linear generator (latent_dim -> 2) and MLP discriminator 2 -> 5 -> 3 -> 1 (tanh)."""

    def __init__(self, latent_dim=2, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = latent_dim
        self.generator = keras.Sequential([keras.Input((latent_dim,)), keras.layers.Dense(2)], name="generator")
        self.discriminator = keras.Sequential([keras.Input((2,)), keras.layers.Dense(5, activation="tanh"),
                                               keras.layers.Dense(3, activation="tanh"), keras.layers.Dense(1)],
                                              name="discriminator")
        self.built = True

    def get_config(self):
        return {**super().get_config(), "latent_dim": self.latent_dim}


def build(config):
    """The compiled GaussianGAN of `config`, initialised from `config.seed` (call under the strategy scope)."""
    keras.utils.set_random_seed(config.seed)
    model = GaussianGAN(config.latent_dim)
    model.compile(d_optimizer=keras.optimizers.Adam(config.d_lr), g_optimizer=keras.optimizers.Adam(config.lr))
    return model


def sample_statistics(x):
    """Mean (2,) and covariance (2, 2) of samples (n, 2), as lists."""
    x = np.asarray(x, np.float64)
    return x.mean(0).round(4).tolist(), np.cov(x, rowvar=False).round(4).tolist()


def _generate(model, n, seed):
    z = np.random.default_rng(seed + 1).normal(size=(n, model.latent_dim)).astype(np.float32)
    return model.generator(z, training=False).numpy()


def _report(real, fake, path):
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(real[:, 0], real[:, 1], s=4, label="real")
    ax.scatter(fake[:, 0], fake[:, 1], s=4, label="generated")
    ax.legend()
    save_figure(fig, path)
    (real_mean, real_cov), (fake_mean, fake_cov) = sample_statistics(real), sample_statistics(fake)
    return {"mean": fake_mean, "cov": fake_cov, "data_mean": real_mean, "data_cov": real_cov,
            "mean_error": float(np.abs(np.subtract(fake_mean, real_mean)).max()),
            "cov_error": float(np.abs(np.subtract(fake_cov, real_cov)).max()),
            "cov_rel_error": float(np.linalg.norm(np.subtract(fake_cov, real_cov)) / np.linalg.norm(real_cov))}


def train(ctx):
    cfg = ctx.config
    per_replica_batch_size(cfg.batch_size, ctx.strategy)
    real = gaussian_data(cfg.n_points, cfg.seed)
    with ctx.strategy.scope():
        model = build(cfg)
    run = ctx.run()
    history = training.fit(model, lambda epoch: gan_dataset(real, cfg.batch_size, cfg.latent_dim, cfg.seed, epoch),
                           run, epochs=cfg.epochs)
    metrics = _report(real, _generate(model, cfg.n_points, cfg.seed), run.file("samples.png"))
    return {**metrics, "d_loss": history[-1]["d_loss"], "g_loss": history[-1]["g_loss"]}


def restore(ctx, model):
    """Restore `model` from the run's newest checkpoint; returns its epoch."""
    return ctx.restore(model)


def evaluate(ctx):
    cfg = ctx.config
    model = build(cfg)
    restore(ctx, model)
    real = gaussian_data(cfg.n_points, cfg.seed)
    return _report(real, _generate(model, cfg.n_points, cfg.seed), ctx.run_dir / "samples.png")


def generate(ctx):
    """`--n` points (n, 2) from the trained generator, its noise seeded by `--sample-seed`."""
    model = build(ctx.config)
    epoch = restore(ctx, model)
    z = np.random.default_rng(10_000 + ctx.args.sample_seed).normal(size=(ctx.args.n, model.latent_dim))
    points = model.generator(z.astype(np.float32), training=False).numpy()
    return {"samples": points.round(6).tolist(), "epoch": epoch}
