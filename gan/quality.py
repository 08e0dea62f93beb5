"""Sample quality of an image generator: Frechet distance in a suite-trained feature space.

The feature network is a small CNN trained by the suite on the real training images with
a self-supervised task that needs no labels, predicting which of four rotations
(0, 90, 180, 270 degrees) was applied (Gidaris et al., 2018). Its penultimate layer
responds to the upright shape of a figure, its colours and its outline, so the
Frechet distance between Gaussians fitted to these features (as FID does with
Inception features) separates sprites from grey blobs. The kernel inception distance
(KID; Binkowski et al. 2018) is the unbiased squared MMD with the cubic polynomial kernel
in the same features: unlike the Frechet distance it has no bias at small sample sizes.
Every number is reported with two references: real vs real (a held-out split, the floor)
and the untrained generator (the ceiling).
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


def polynomial_mmd2(a, b):
    """Unbiased squared MMD between feature sets a (m, d) and b (n, d) with the KID kernel
    k(x, y) = (x.y / d + 1)^3: the mean of k over distinct pairs within a and within b, minus twice the
    mean over all a-b pairs."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d = a.shape[1]
    k_aa, k_bb, k_ab = ((x @ y.T / d + 1) ** 3 for x, y in ((a, a), (b, b), (a, b)))
    m, n = len(a), len(b)
    within_a = (k_aa.sum() - np.trace(k_aa)) / (m * (m - 1))
    within_b = (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1))
    return float(within_a + within_b - 2 * k_ab.mean())


def kernel_distance(a, b, subsets=50, subset_size=100, seed=0):
    """KID between feature sets a (m, d) and b (n, d): the mean of `polynomial_mmd2` over `subsets` random
    subsets of `subset_size` rows of each (drawn without replacement within a subset, seeded), and
    the standard deviation over the subsets, as the KID paper and torch-fidelity report it."""
    rng = np.random.default_rng(seed)
    size = min(subset_size, len(a), len(b))
    values = [polynomial_mmd2(a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)])
              for _ in range(subsets)]
    return float(np.mean(values)), float(np.std(values))


def nearest_neighbours(queries, references):
    """For features queries (n, d), the index (n,) of the nearest of references (m, d) and its Euclidean
    distance (n,)."""
    queries, references = np.asarray(queries, np.float64), np.asarray(references, np.float64)
    d2 = (queries ** 2).sum(1)[:, None] - 2 * queries @ references.T + (references ** 2).sum(1)[None, :]
    index = d2.argmin(1)
    return index, np.sqrt(np.clip(d2[np.arange(len(queries)), index], 0, None))


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
        self.held_out_features = features(extractor, held_out)
        self.floor = frechet_distance(self.real_features, self.held_out_features)
        self.kid_floor = kernel_distance(self.real_features, self.held_out_features)[0]

    def score(self, images):
        """Frechet distance of images (n, H, W, 3) in [-1, 1] to the real training images."""
        return frechet_distance(self.real_features, features(self.extractor, images))

    def scores(self, images):
        """{"quality": Frechet distance, "kid": KID, "kid_std": its spread over subsets} of images (n, H, W, 3)."""
        return self.compare(features(self.extractor, images))

    def compare(self, generated):
        """`scores` of generated images given by their features (n, d)."""
        kid, kid_std = kernel_distance(self.real_features, generated)
        return {"quality": frechet_distance(self.real_features, generated), "kid": kid, "kid_std": kid_std}

    def memorisation(self, generated):
        """Nearest training image in feature space of each generated image, given by its features (n, d):
        (index (n,), distance (n,)), and the median nearest-training distance of the generated and of the
        held-out real images."""
        index, distance = nearest_neighbours(generated, self.real_features)
        held_out = nearest_neighbours(self.held_out_features, self.real_features)[1]
        return index, distance, {"sample_nn_median": float(np.median(distance)),
                                 "held_out_nn_median": float(np.median(held_out))}
