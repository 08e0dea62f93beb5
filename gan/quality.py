"""Sample quality of an image generator: Frechet distance in a suite-trained feature space.

The feature network is a small CNN trained by the suite on the real training images with
a self-supervised task that needs no labels, predicting which of four rotations
(0, 90, 180, 270 degrees) was applied (Gidaris et al., 2018). Its penultimate layer
responds to the upright shape of a figure, its colours and its outline, so the
Frechet distance between Gaussians fitted to these features (as FID does with
Inception features) separates sprites from grey blobs. Every number is reported with
two references: real vs real (a held-out split, the floor) and the untrained
generator (the ceiling).
"""
import keras
import numpy as np
import tensorflow as tf

FEATURE_SIZE = 32


def frechet_distance(a, b):
    """Frechet distance between Gaussians fitted to feature sets a (n, d) and b (m, d).

    ||mu_a - mu_b||^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2)), with the trace of the matrix
    square root computed from the eigenvalues of the symmetric C_a^(1/2) C_b C_a^(1/2).
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    w, v = np.linalg.eigh(cov_a)
    sqrt_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a)
    trace_sqrt = np.sqrt(np.clip(cross, 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt)


def build_feature_net(features=64):
    """CNN images (batch, H, W, 3) in [-1, 1] -> rotation logits (batch, 4); layer "features" is (batch, features)."""
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Resizing(FEATURE_SIZE, FEATURE_SIZE, interpolation="area")(inputs)
    for width in (32, 64, 128):
        x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(features, activation="relu", name="features")(x)
    return keras.Model(inputs, keras.layers.Dense(4)(x), name="rotation_net")


def rotations(images):
    """The four rotations of images (n, H, W, C): ((4n, H, W, C), labels (4n,) in 0..3)."""
    rotated = [np.rot90(images, k, axes=(1, 2)) for k in range(4)]
    return np.concatenate(rotated), np.repeat(np.arange(4), len(images))


def train_feature_net(images, epochs=4, batch_size=64, seed=0):
    """Train the rotation classifier on square images (n, H, W, 3) in [-1, 1]; return (net, accuracy)."""
    keras.utils.set_random_seed(seed)
    net = build_feature_net()
    net.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"])
    small = tf.image.resize(images, (FEATURE_SIZE, FEATURE_SIZE), method="area").numpy()
    x, y = rotations(small)
    history = net.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0)
    return net, float(history.history["accuracy"][-1])


def feature_model(net):
    """The feature extractor (images -> (batch, features)) of a rotation net."""
    return keras.Model(net.input, net.get_layer("features").output)  # one tensor in, as it is called


def features(extractor, images, batch_size=256):
    """Features (n, d) of images (n, H, W, 3) in [-1, 1]."""
    return np.concatenate([extractor(images[i:i + batch_size], training=False).numpy()
                           for i in range(0, len(images), batch_size)])


class QualityMeter:
    """Frechet distance of generated images to the real training images, with floor and ceiling.

    `real` (n, H, W, 3) are the training images (the reference statistics), `held_out`
    (m, H, W, 3) real images the generator never saw: the floor is their distance to
    `real`. Generated sets are scored with m images, so every number has the same
    sample size (the distance is biased upwards for small samples).
    """

    def __init__(self, extractor, real, held_out):
        self.extractor = extractor
        self.n = len(held_out)
        self.real_features = features(extractor, real)
        self.floor = frechet_distance(self.real_features, features(extractor, held_out))

    def score(self, images):
        """Frechet distance of images (n, H, W, 3) in [-1, 1] to the real training images."""
        return frechet_distance(self.real_features, features(self.extractor, images))
