"""Differentiable augmentation (DiffAugment; Zhao et al. 2020) for data-efficient GAN training.

The same random colour, translation and cutout transforms are applied to the real and the
generated images the discriminator sees, in the discriminator's and the generator's step,
and the generator's gradient flows through them. Every transform is a plain TensorFlow op
of the images and of per-image uniform numbers `u` (batch, UNIFORMS) in [0, 1) that the
seeded input pipeline draws, so a run is reproducible and splits over replicas with its
batch. Images are in [-1, 1], as the authors' code takes them.
"""
import tensorflow as tf

UNIFORMS = 7  # brightness, saturation, contrast, translation y and x, cutout centre y and x
TRANSLATION = 0.125  # largest shift, a fraction of the image side (the authors' ratio)
CUTOUT = 0.5  # side of the erased square, a fraction of the image side


def color(x, u):
    """Brightness x + (u0 - 1/2), saturation (x - grey) * 2 u1 + grey, contrast (x - mean) (u2 + 1/2) + mean."""
    x = x + (u[:, 0, None, None, None] - 0.5)
    grey = tf.reduce_mean(x, axis=3, keepdims=True)
    x = (x - grey) * (2 * u[:, 1, None, None, None]) + grey
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    return (x - mean) * (u[:, 2, None, None, None] + 0.5) + mean


def _shift_matrices(shift, size):
    """(batch, size, size) 0/1 matrices R with R[b, i, k] = 1 where k = i - shift[b] (rows leaving the image are zero)."""
    source = tf.range(size)[None, :] - shift[:, None]  # (batch, size): the source row of each output row
    return tf.one_hot(source, size, dtype=tf.float32)  # an index outside 0..size-1 gives a zero row


def translation(x, u, ratio=TRANSLATION):
    """Shift each image by whole pixels in [-s, s] (s = round(ratio * side)) along y and x, zero-filled."""
    height, width = x.shape[1], x.shape[2]
    sy, sx = int(height * ratio + 0.5), int(width * ratio + 0.5)
    dy = tf.cast(tf.floor(u[:, 3] * (2 * sy + 1)), tf.int32) - sy
    dx = tf.cast(tf.floor(u[:, 4] * (2 * sx + 1)), tf.int32) - sx
    x = tf.einsum("bik,bkwc->biwc", _shift_matrices(dy, height), x)
    return tf.einsum("bjl,bilc->bijc", _shift_matrices(dx, width), x)


def cutout(x, u, ratio=CUTOUT):
    """Set a square of side round(ratio * side) at a random centre (it may overhang the border) to 0."""
    height, width = x.shape[1], x.shape[2]
    ch, cw = int(height * ratio + 0.5), int(width * ratio + 0.5)
    top = tf.cast(tf.floor(u[:, 5] * (height + 1 - ch % 2)), tf.int32) - ch // 2
    left = tf.cast(tf.floor(u[:, 6] * (width + 1 - cw % 2)), tf.int32) - cw // 2
    rows, cols = tf.range(height)[None, :], tf.range(width)[None, :]
    in_rows = tf.cast((rows >= top[:, None]) & (rows < top[:, None] + ch), x.dtype)  # (batch, height)
    in_cols = tf.cast((cols >= left[:, None]) & (cols < left[:, None] + cw), x.dtype)
    return x * (1 - in_rows[:, :, None, None] * in_cols[:, None, :, None])


OPS = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x, u, policy):
    """Images x (batch, H, W, C) in [-1, 1] through the transforms of `policy` (names of OPS) in order,
    driven by uniforms u (batch, UNIFORMS); differentiable in x."""
    for name in policy:
        x = OPS[name](x, u)
    return x
