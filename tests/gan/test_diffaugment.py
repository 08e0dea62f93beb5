"""DiffAugment's transforms by hand, their gradients, and the small-data DCGAN's losses and generator average."""
import numpy as np
import pytest
import tensorflow as tf

from common import cli
from gan import dcgan, diffaugment
from gan.gan_model import discriminator_loss, generator_loss, standing_statistics


def _uniforms(batch, **values):
    """Uniforms (batch, UNIFORMS) at 0.5 (the identity of colour) with the named columns set."""
    u = np.full((batch, diffaugment.UNIFORMS), 0.5, np.float32)
    for column, value in values.items():
        u[:, int(column[1:])] = value
    return tf.constant(u)


def test_translation_shifts_whole_pixels_with_zero_fill():
    x = np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    # s = round(16 * 0.125) = 2: u in [0, 1) -> shift floor(5 u) - 2 in -2..2; u3 = 0.9 -> dy = +2, u4 = 0.1 -> dx = -2
    out = diffaugment.translation(tf.constant(x), _uniforms(2, u3=0.9, u4=0.1)).numpy()
    expected = np.zeros_like(x)
    expected[:, 2:, :-2] = x[:, :-2, 2:]  # out[i, j] = x[i - 2, j + 2]
    np.testing.assert_allclose(out, expected, atol=1e-6)
    np.testing.assert_allclose(diffaugment.translation(tf.constant(x), _uniforms(2)).numpy(), x, atol=1e-6)  # 0.5 -> 0


def test_cutout_zeroes_one_square_of_half_the_side():
    x = np.ones((1, 16, 16, 1), np.float32)
    # side 8; centre floor(17 u) with u = 0.5 -> 8, so rows and columns 4..11 are erased
    out = diffaugment.cutout(tf.constant(x), _uniforms(1)).numpy()[0, :, :, 0]
    expected = np.ones((16, 16))
    expected[4:12, 4:12] = 0
    np.testing.assert_array_equal(out, expected)
    corner = diffaugment.cutout(tf.constant(x), _uniforms(1, u5=0.0, u6=0.0)).numpy()[0, :, :, 0]
    assert corner.sum() == 256 - 4 * 4  # centred at (0, 0): only a quarter of the square is inside


def test_color_matches_the_formula_and_is_the_identity_at_one_half():
    x = np.random.default_rng(1).uniform(-1, 1, (3, 4, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(diffaugment.color(tf.constant(x), _uniforms(3)).numpy(), x, atol=1e-6)
    out = diffaugment.color(tf.constant(x), _uniforms(3, u0=0.7, u1=0.25, u2=1.0)).numpy()
    y = x + 0.2
    grey = y.mean(3, keepdims=True)
    y = (y - grey) * 0.5 + grey
    mean = y.mean((1, 2, 3), keepdims=True)
    np.testing.assert_allclose(out, (y - mean) * 1.5 + mean, atol=1e-5)


def test_gradients_flow_through_every_transform():
    x = tf.Variable(np.random.default_rng(2).uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32))
    u = tf.constant(np.random.default_rng(3).uniform(size=(2, diffaugment.UNIFORMS)).astype(np.float32))
    with tf.GradientTape() as tape:
        y = diffaugment.diff_augment(x, u, ("color", "translation", "cutout"))
        loss = tf.reduce_sum(y * tf.constant(np.arange(y.shape.num_elements(), dtype=np.float32).reshape(y.shape)))
    grad = tape.gradient(loss, x)
    assert grad is not None and np.isfinite(grad.numpy()).all() and np.abs(grad.numpy()).sum() > 0
    # translation alone is a permutation with zero fill: the gradient of sum(y) is 1 where a pixel survives
    with tf.GradientTape() as tape:
        y = diffaugment.translation(x, _uniforms(2, u3=0.9, u4=0.5))
        s = tf.reduce_sum(y)
    g = tape.gradient(s, x).numpy()
    assert (g[:, :-1] == 1).all() and (g[:, -1:] == 0).all()  # 8 * 0.125 = 1 pixel down: the last row falls off


def test_policy_flag_names_and_order(capsys):
    assert dcgan.AUGMENTATIONS == tuple(diffaugment.OPS)
    cfg = cli.build_config(dcgan.Config, {"augment": "cutout,color"})
    assert cfg.augment_policy == ("color", "cutout")
    assert cli.build_config(dcgan.Config, {"augment": "none"}).augment_policy == ()
    assert dcgan.main(["train", "--demo", "--augment", "colour"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--augment 'colour' is not an augmentation" in err[0], err


def test_hinge_and_bce_losses_by_hand():
    real, fake = tf.constant([[2.0], [0.5]]), tf.constant([[-2.0], [0.0]])
    # hinge: mean(relu(1 - [2, .5])) + mean(relu(1 + [-2, 0])) = 0.25 + 0.5
    assert float(discriminator_loss(real, fake, "hinge")) == pytest.approx(0.75)
    assert float(generator_loss(fake, "hinge")) == pytest.approx(1.0)
    softplus = lambda v: np.log1p(np.exp(v))  # noqa: E731: bce(logit, 1) = softplus(-logit), bce(logit, 0) = softplus(logit)
    expected = (np.mean(softplus(-np.array([2.0, 0.5]))) + np.mean(softplus(np.array([-2.0, 0.0])))) / 2
    assert float(discriminator_loss(real, fake)) == pytest.approx(expected, rel=1e-6)
    assert float(generator_loss(fake)) == pytest.approx(np.mean(softplus(np.array([2.0, 0.0]))), rel=1e-6)


def test_generator_average_follows_the_warm_up_formula():
    cfg = cli.build_config(dcgan.Config, {"image_size": 16, "gen_width": 8, "disc_width": 8, "latent_dim": 4,
                                          "batch_size": 4, "ema": 0.9})
    model = dcgan.build(cfg)
    assert model.sampler is model.ema_generator
    before = [w.numpy() for w in model.generator.trainable_weights]
    for a, b in zip(model.ema_generator.weights, model.generator.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())  # starts as the generator
    statistics = [w.numpy() for w in model.ema_generator.non_trainable_weights]
    real = tf.constant(np.random.default_rng(0).uniform(-1, 1, (4, 16, 16, 3)).astype(np.float32))
    z = tf.constant(np.random.default_rng(1).normal(size=(4, 4)).astype(np.float32))
    u = tf.constant(np.random.default_rng(2).uniform(size=(4, 3, diffaugment.UNIFORMS)).astype(np.float32))
    model.train_step((real, z, u))
    decay = min(0.9, 2 / 11)  # after the first generator step, t = 1
    for average, old, new in zip(model.ema_generator.trainable_weights, before, model.generator.trainable_weights,
                                 strict=True):
        np.testing.assert_allclose(average.numpy(), decay * old + (1 - decay) * new.numpy(), rtol=1e-5, atol=1e-7)
    assert any(not np.allclose(o, n.numpy()) for o, n in zip(before, model.generator.trainable_weights))
    for kept, now in zip(statistics, model.ema_generator.non_trainable_weights, strict=True):
        np.testing.assert_array_equal(kept, now.numpy())  # batch-norm statistics are not averaged


def test_standing_statistics_are_the_batch_statistics_of_the_averaged_weights():
    g = dcgan.build_generator(8, 4, 4)
    z = tf.constant(np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32))
    standing_statistics(g, z)
    norms = [layer for layer in g.layers if type(layer).__name__ == "BatchNormalization"]
    assert [layer.momentum for layer in norms] == [0.9] * len(norms)  # restored
    first = norms[0]
    x = g.get_layer(index=2)(g.get_layer(index=1)(z))  # reshape, then the first transposed convolution
    np.testing.assert_allclose(first.moving_mean.numpy(), x.numpy().mean((0, 1, 2)), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(first.moving_variance.numpy(), x.numpy().var((0, 1, 2)), rtol=1e-3, atol=1e-6)
    out = g(z, training=False).numpy()
    np.testing.assert_allclose(out, g(z, training=True).numpy(), atol=1e-4)  # inference = training on that batch
    book = dcgan.build(cli.build_config(dcgan.Config, {"image_size": 16, "gen_width": 8, "disc_width": 8},
                                        preset=dcgan.BOOK))
    assert book.ema_generator is None and book.sampler is book.generator and book.augment_policy == ()


def test_spectral_norm_bounds_the_discriminators_layers():
    d = dcgan.build_discriminator(16, 8, spectral_norm=True)
    x = tf.constant(np.random.default_rng(0).uniform(-1, 1, (4, 16, 16, 3)).astype(np.float32))
    for _ in range(30):  # power iterations run in training calls
        d(x, training=True)
    kinds = [type(layer).__name__ for layer in d.layers]
    wrapped = [layer for layer in d.layers if type(layer).__name__ == "SpectralNormalization"]
    assert len(wrapped) == 3 and "BatchNormalization" not in kinds, kinds
    for layer in wrapped:
        kernel = layer.layer.kernel.numpy()
        sigma = np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]
        assert sigma == pytest.approx(1.0, rel=0.02)
