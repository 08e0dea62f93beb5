"""The DCGAN's networks, training, evaluation and sampling (`gan.dcgan` is its command and configuration).

Everything that needs TensorFlow lives here, so `python -m gan.dcgan --help` and a usage error
answer without loading it.
"""
import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from common import training
from common.distribute import per_replica_batch_size, use_xla
from common.errors import CheckpointMismatch, DlsuiteError, UsageError
from common.files import atomic_path, writable_dir
from common.plots import plt, save_figure
from gan import data, diffaugment, quality
from gan.gan_model import GAN, gan_dataset, standing_statistics

GRID_SIZE = 32
FEATURE_NET = "feature_net.keras"
REFERENCE = "quality_reference.json"


def _init():
    """A fresh N(0, 0.02) initializer per layer: one made at import time would carry an unseeded
    seed (drawn before `set_random_seed`) and give every layer of the same shape the same weights."""
    return keras.initializers.RandomNormal(0.0, 0.02)


def _batch_norm(sync):
    return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, synchronized=sync,
                                           gamma_initializer=keras.initializers.RandomNormal(1.0, 0.02))


def _doublings(image_size):
    return int(np.log2(image_size // 4))


def build_generator(image_size=64, latent_dim=100, width=64, sync_batch_norm=False):
    """z (batch, latent_dim) -> images (batch, image_size, image_size, 3) in [-1, 1].

    For 64x64 and width 64 this is the book's net_G: 4x4x512 -> 8x8x256 -> 16x16x128
    -> 32x32x64 -> 64x64x3, kernel 4, no biases.
    """
    n = _doublings(image_size)
    z = keras.Input((latent_dim,))
    x = keras.layers.Reshape((1, 1, latent_dim))(z)
    for i in range(n):
        channels = width * 2 ** (n - 1 - i)
        x = keras.layers.Conv2DTranspose(channels, 4, strides=1 if i == 0 else 2,
                                         padding="valid" if i == 0 else "same", use_bias=False,
                                         kernel_initializer=_init())(x)
        x = keras.layers.ReLU()(_batch_norm(sync_batch_norm)(x))
    x = keras.layers.Conv2DTranspose(3, 4, strides=2, padding="same", use_bias=False, kernel_initializer=_init())(x)
    return keras.Model(z, keras.layers.Activation("tanh")(x), name="generator")


def build_discriminator(image_size=64, width=64, sync_batch_norm=False, spectral_norm=False):
    """Images (batch, image_size, image_size, 3) -> logits (batch, 1).

    For 64x64 and width 64: 32x32x64 -> 16x16x128 -> 8x8x256 -> 4x4x512 -> 1x1x1,
    kernel 4 stride 2, LeakyReLU(0.2), batch norm after all but the first convolution.
    `spectral_norm`: every convolution's kernel divided by its largest singular value
    (`keras.layers.SpectralNormalization`, one power iteration per call; Miyato et al. 2018)
    in place of the batch norms.
    """
    def conv(*args, **kwargs):
        layer = keras.layers.Conv2D(*args, use_bias=False, kernel_initializer=_init(), **kwargs)
        return keras.layers.SpectralNormalization(layer) if spectral_norm else layer

    n = _doublings(image_size)
    images = keras.Input((image_size, image_size, 3))
    x = images
    for i in range(n):
        x = conv(width * 2 ** i, 4, strides=2, padding="same")(x)
        if i > 0 and not spectral_norm:
            x = _batch_norm(sync_batch_norm)(x)
        x = keras.layers.LeakyReLU(0.2)(x)
    x = conv(1, 4, padding="valid")(x)
    return keras.Model(images, keras.layers.Flatten()(x), name="discriminator")


@keras.saving.register_keras_serializable(package="dlsuite")
class DCGAN(GAN):
    """The book's DCGAN generator and discriminator trained by `GAN.train_step`, with the small-data
    parts: DiffAugment `augment` (a tuple of policy names), spectral normalisation of the
    discriminator, the `loss` ("bce" or "hinge") and an `ema` of the generator's weights (0: none).
    `sampler` is the generator that draws samples: the EMA one when there is one."""

    def __init__(self, image_size=64, latent_dim=100, gen_width=64, disc_width=64, sync_batch_norm=False,
                 augment=(), spectral_norm=False, loss="bce", ema=0.0, **kwargs):
        super().__init__(**kwargs)
        self.image_size, self.latent_dim = image_size, latent_dim
        self.gen_width, self.disc_width = gen_width, disc_width
        self.augment_policy, self.spectral_norm, self.loss_kind = tuple(augment), spectral_norm, loss
        self.ema_decay = float(ema)
        self.generator = build_generator(image_size, latent_dim, gen_width, sync_batch_norm)
        self.discriminator = build_discriminator(image_size, disc_width, sync_batch_norm, spectral_norm)
        if self.ema_decay > 0:
            self.ema_generator = build_generator(image_size, latent_dim, gen_width, sync_batch_norm)
            self.ema_generator.set_weights(self.generator.get_weights())
        self.built = True

    @property
    def sampler(self):
        return self.ema_generator if self.ema_generator is not None else self.generator

    def call(self, z, training=False):
        """Images (batch, S, S, 3) in [-1, 1] from the sampler for noise z (batch, latent_dim)."""
        return self.sampler(z, training=training)

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size, "latent_dim": self.latent_dim,
                "gen_width": self.gen_width, "disc_width": self.disc_width, "augment": list(self.augment_policy),
                "spectral_norm": self.spectral_norm, "loss": self.loss_kind, "ema": self.ema_decay}


def build(config, replicas=1):
    """The compiled DCGAN of `config`, initialised from `config.seed` (call under the strategy scope).

    With more than one replica the batch norms are synchronised, so the update equals
    the single-replica one.
    """
    keras.utils.set_random_seed(config.seed)
    model = DCGAN(config.image_size, config.latent_dim, config.gen_width, config.disc_width,
                  sync_batch_norm=replicas > 1, augment=config.augment_policy,
                  spectral_norm=config.spectral_norm, loss=config.loss, ema=config.ema)
    adam = lambda: keras.optimizers.Adam(config.lr, beta_1=config.beta_1)  # noqa: E731
    model.compile(d_optimizer=adam(), g_optimizer=adam(), jit_compile=use_xla())
    return model


def random_flip(images, seed):
    """Flip each image of a batch (batch, H, W, C) left-right with probability 1/2 (stateless, seeded)."""
    flip = tf.random.stateless_uniform(tf.shape(images)[:1], seed) < 0.5
    return tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)


def generate_images(model, z, batch_size=256, generator=None):
    """Outputs (n, S, S, 3) in [-1, 1] of the model's sampler (the EMA generator if it has one) or of
    `generator`, for noise z (n, latent_dim), inference-mode batch norm."""
    generator = generator or model.sampler
    return np.concatenate([generator(z[i:i + batch_size], training=False).numpy()
                           for i in range(0, len(z), batch_size)])


STATS_SAMPLES = 1024


def calibrate(model, config):
    """Give the moving-average generator (if the model has one) the batch-norm statistics of its own weights,
    from STATS_SAMPLES noise vectors seeded by the run's seed; a no-op for the raw generator."""
    if model.ema_generator is not None:
        standing_statistics(model.ema_generator, fixed_noise(STATS_SAMPLES, config.latent_dim, config.seed + 4))


def to_uint8(images):
    """Images in [-1, 1] -> uint8 pixels in 0..255 (same shape)."""
    return np.round((np.asarray(images) + 1) * 127.5).clip(0, 255).astype(np.uint8)


def save_grid(images, path, ncols=8, scale=3, pad=2):
    """Tile images (n, S, S, 3) in [-1, 1] into one PNG on a grey canvas, each enlarged `scale` times."""
    n, size = len(images), images.shape[1]
    nrows = -(-n // ncols)
    cell = size * scale + pad
    canvas = np.full((nrows * cell + pad, ncols * cell + pad, 3), 128, np.uint8)
    pixels = to_uint8(images).repeat(scale, 1).repeat(scale, 2)
    for i, img in enumerate(pixels):
        r, c = divmod(i, ncols)
        canvas[pad + r * cell:(r + 1) * cell, pad + c * cell:(c + 1) * cell] = img
    with atomic_path(path) as tmp:
        Image.fromarray(canvas).save(tmp)
    return Path(path)


def fixed_noise(n, latent_dim, seed):
    """Seeded standard-normal noise (n, latent_dim) float32."""
    return np.random.default_rng(seed).normal(size=(n, latent_dim)).astype(np.float32)


def load_images(ctx, cfg):
    """(train, held-out) real images of the run's dataset at the config's size."""
    root = data.sprite_root(ctx.data_dir, ctx.demo)
    images = data.read_image_folder(root, cfg.image_size, cfg.background)
    return data.split_holdout(images, cfg.holdout, cfg.seed)


def load_feature_net(path):
    """The run's quality feature extractor from `path` (`FEATURE_NET`); one line naming the file when it is
    missing or damaged (the quality scale belongs to the run, so only a new run can replace it)."""
    path = Path(path)
    if not path.is_file():
        raise DlsuiteError(f"{path} not found; {path.parent} is not a DCGAN run made by train")
    try:
        return quality.feature_model(keras.models.load_model(path))
    except (OSError, ValueError, TypeError, KeyError, EOFError, zipfile.BadZipFile) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DlsuiteError(f"{path} is damaged ({reason[:200]}); it defines the run's quality scale, so train a new "
                           "run") from None


def restore(ctx, model, checkpoint=None):
    """Restore `model` from the run's newest checkpoint (or `checkpoint`); returns its epoch.
    A checkpoint of other sizes gives one clear line."""
    try:
        return ctx.restore(model, checkpoint)
    except CheckpointMismatch:
        raise DlsuiteError(
            f"the newest checkpoint in {ctx.run_dir} does not fit a DCGAN with image_size={model.image_size}, "
            f"latent_dim={model.latent_dim}, gen_width={model.gen_width}, disc_width={model.disc_width}; "
            "use the run's own config (no size flags) or a new --run-dir") from None


def _quality_plot(history, reference, path):
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot([h["epoch"] for h in history], [h["quality"] for h in history], marker=".", label="generated")
    ax.axhline(reference["floor"], color="g", ls="--", label="floor: held-out real")
    ax.axhline(reference["ceiling"], color="r", ls="--", label="ceiling: untrained generator")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("Frechet distance")
    ax.legend(fontsize=7)
    save_figure(fig, path)


def train(ctx):
    cfg = ctx.config
    replicas = ctx.strategy.num_replicas_in_sync
    per_replica_batch_size(cfg.batch_size, ctx.strategy)
    real, held_out = load_images(ctx, cfg)
    if len(real) < cfg.batch_size:
        raise UsageError(f"--batch-size {cfg.batch_size} is larger than the {len(real)} training images")
    run = ctx.run()
    with ctx.strategy.scope():
        model = build(cfg, replicas)
    if run.resume:
        restore(ctx, model)  # fails with one line on a checkpoint of other sizes
        extractor = load_feature_net(run.file(FEATURE_NET))
        try:
            reference = json.loads(run.file(REFERENCE).read_text())
        except (OSError, ValueError) as e:
            raise DlsuiteError(f"{run.file(REFERENCE)} is missing or damaged ({e}); train a new run") from None
    else:
        net, accuracy = quality.train_feature_net(real, epochs=cfg.quality_epochs, seed=cfg.seed)
        if run.chief:
            net.save(run.file(FEATURE_NET))
        extractor = quality.feature_model(net)
        reference = {"feature_net_rotation_accuracy": accuracy}
    meter = quality.QualityMeter(extractor, real, held_out)
    z_quality = fixed_noise(meter.n, cfg.latent_dim, cfg.seed + 2)
    z_grid = fixed_noise(GRID_SIZE, cfg.latent_dim, cfg.seed + 3)
    if not run.resume:
        calibrate(model, cfg)
        untrained = meter.scores(generate_images(model, z_quality))
        reference.update(floor=meter.floor, kid_floor=meter.kid_floor, ceiling=untrained["quality"],
                         kid_ceiling=untrained["kid"], n_train=len(real), n_held_out=len(held_out))
        run.write_json(REFERENCE, reference)
    steps = len(real) // cfg.batch_size

    def on_epoch_end(epoch, logs):
        calibrate(model, cfg)
        save_grid(generate_images(model, z_grid), run.file(f"samples/epoch-{epoch + 1:04d}.png"))
        raw = {}
        if model.ema_generator is not None:  # the raw generator's numbers beside the average's
            raw = {f"raw_{k}": v for k, v in meter.scores(generate_images(model, z_quality, generator=model.generator))
                   .items() if k != "kid_std"}
        return {**meter.scores(generate_images(model, z_quality)), **raw,
                "images_per_s": round(steps * cfg.batch_size / logs["time_s"], 1)}

    transform = random_flip if cfg.flip else None
    uniforms = diffaugment.UNIFORMS if model.augment_policy else 0
    history = training.fit(model, lambda epoch: gan_dataset(real, cfg.batch_size, cfg.latent_dim, cfg.seed, epoch,
                                                            transform, uniforms), run, epochs=cfg.epochs,
                           on_epoch_end=on_epoch_end)
    if run.chief and history:
        _quality_plot(history, reference, run.file("quality.png"))
    last = history[-1]
    return {"quality": last["quality"], "kid": last["kid"], "kid_std": last["kid_std"],
            "floor": reference["floor"], "kid_floor": reference.get("kid_floor"), "ceiling": reference["ceiling"],
            "kid_ceiling": reference.get("kid_ceiling"),
            "d_loss": last["d_loss"], "g_loss": last["g_loss"], "epochs": last["epoch"],
            "images_per_s": last["images_per_s"], "train_time_s": round(sum(h["time_s"] for h in history), 1)}


NEAREST_PNG = "nearest_training.png"
MEMORISATION_SAMPLES = 16


def evaluate(ctx):
    """Frechet distance and KID of the sampler (the EMA generator, if the run has one; the raw generator's
    under "raw"), with floor and ceiling, and the memorisation check: the median distance from generated
    images to their nearest training image in feature space against that of held-out real images, and
    `nearest_training.png` (16 samples, each beside its nearest training image)."""
    cfg = ctx.config
    extractor = load_feature_net(Path(ctx.run_dir) / FEATURE_NET)
    real, held_out = load_images(ctx, cfg)
    meter = quality.QualityMeter(extractor, real, held_out)
    z = fixed_noise(meter.n, cfg.latent_dim, cfg.seed + 2)
    model = build(cfg)
    calibrate(model, cfg)
    untrained = meter.scores(generate_images(model, z))
    epoch = restore(ctx, model)
    calibrate(model, cfg)
    images = generate_images(model, z)
    generated = quality.features(extractor, images)  # once, for the scores and the memorisation check
    index, distance, medians = meter.memorisation(generated)
    pairs = np.stack([images[:MEMORISATION_SAMPLES], real[index[:MEMORISATION_SAMPLES]]], axis=1)
    save_grid(pairs.reshape(-1, *images.shape[1:]), Path(ctx.run_dir) / NEAREST_PNG)
    result = {**meter.compare(generated), "floor": meter.floor, "kid_floor": meter.kid_floor,
              "ceiling": untrained["quality"], "kid_ceiling": untrained["kid"]}
    if model.ema_generator is not None:
        result["raw"] = meter.scores(generate_images(model, z, generator=model.generator))
    medians["samples_closer_than_held_out"] = bool(medians["sample_nn_median"] < medians["held_out_nn_median"])
    return {**result, "memorisation": medians, "nearest_png": str(Path(ctx.run_dir) / NEAREST_PNG), "epoch": epoch}


def slerp(a, b, t):
    """Spherical interpolation between latent points a, b (d,) at fractions t (k,) -> (k, d); near-parallel
    points interpolate linearly."""
    cos = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
    omega = np.arccos(np.clip(cos, -1, 1))
    t = np.asarray(t, np.float64)[:, None]
    if omega < 1e-6:
        return ((1 - t) * a + t * b).astype(np.float32)
    return ((np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)).astype(np.float32)


INTERPOLATION_ROWS = 4


def generate(ctx):
    cfg = ctx.config
    out = writable_dir(ctx.args.out or Path(ctx.run_dir) / "samples")  # before the model is built
    model = build(cfg)
    epoch = restore(ctx, model)
    calibrate(model, cfg)
    noise = fixed_noise(ctx.args.n, cfg.latent_dim, 10_000 + ctx.args.sample_seed)
    pixels = to_uint8(generate_images(model, noise))
    for i, img in enumerate(pixels):
        Image.fromarray(img).save(out / f"sample_{i:04d}.png")
    result = {"images": len(pixels), "out": str(out), "epoch": epoch}
    steps = ctx.args.interpolate
    if steps:
        ends = fixed_noise(2 * INTERPOLATION_ROWS, cfg.latent_dim, 20_000 + ctx.args.sample_seed)
        walks = np.concatenate([slerp(ends[2 * r], ends[2 * r + 1], np.linspace(0, 1, steps))
                                for r in range(INTERPOLATION_ROWS)])
        result["interpolation"] = str(save_grid(generate_images(model, walks), out / "interpolation.png",
                                                ncols=steps))
    return result
