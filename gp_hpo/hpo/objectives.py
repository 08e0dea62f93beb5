"""Objectives `objective(config, report)` and how `--objective package.module:function` loads one.

`config` holds the sampled hyperparameters plus the reserved keys `max_epochs` (the
resource the scheduler grants) and `seed` (the trial's seed). The function trains,
calls `report(epoch, error)` after each epoch (epoch counts from 1; error is a
validation error, lower is better), stops at `max_epochs`, and returns early as soon
as `report` returns False (the scheduler stopped the trial). A function may carry a
default search space as its `space` attribute (see `with_space`); otherwise `--space`
is required.

Shipped objectives:
- `fashion_mnist`: the book's HPO objective (19.1: LeNet, SGD, learning rate and batch
  size tuned, epochs the resource), made small for a 2-core CPU: a fixed 4,000-image
  subset of Fashion-MNIST's training file (or of TFDS's `fashion_mnist` train split with
  `--tfds`), 2,000 further training images for validation, and LeNet with ReLU and max
  pooling (the book's sigmoid LeNet does not leave chance level in the few hundred SGD steps
  this budget allows). An epoch takes
  about a second. The test file is never read (it is not ours to tune on).
- `demo`: a Keras MLP on an offline generated 5-class problem (`--demo`).
- `branin`, `hartmann6`: the analytic functions with an artificial epoch resource:
  the error at epoch e is f(x) + g(x) 2^(1 - e), where g > 0 is a smooth
  configuration-dependent distortion, so low epochs rank configurations only
  approximately and more epochs approach f (the same curve whatever `max_epochs` is;
  at 9 epochs the gap is under 1% of g).
"""
import gzip
import importlib
import math
import os
from pathlib import Path

import numpy as np

from common.errors import DatasetError, UsageError

DATA_DIR_ENV = "DLSUITE_HPO_DATA_DIR"
TFDS_ENV = "DLSUITE_HPO_TFDS"  # JSON {"name", "data_dir"}: the TFDS dataset `--tfds` chose, for every worker
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "f3b839f14745c4e79b8fd3c612c99de71320e861",
    "train-labels-idx1-ubyte.gz": "f4909103fbdc4fa0d25c24c0ef242affd5e6311d",
}
FASHION_TRAIN, FASHION_VAL = 4000, 2000


def with_space(space):
    """Decorator attaching a default configuration space (a spec dict) to an objective."""
    def attach(fn):
        fn.space = space
        return fn
    return attach


def load_objective(path):
    """The function named by `package.module:function`, or one UsageError line saying why not."""
    module_name, sep, name = str(path).partition(":")
    if not sep or not module_name or not name:
        raise UsageError(f"--objective {path!r}: expected package.module:function")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # noqa: BLE001 - any import failure is the user's module's problem
        raise UsageError(f"--objective {path}: cannot import {module_name} ({type(e).__name__}: {e})") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise UsageError(f"--objective {path}: {module_name} has no function {name!r}")
    return fn


def _analytic(config, report, f, distortion):
    for epoch in range(1, int(config["max_epochs"]) + 1):
        if not report(epoch, float(f + distortion * 2.0 ** (1 - epoch))):
            return


def branin_value(x0, x1):
    """Branin-Hoo on [-5, 10] x [0, 15]; global minimum 0.397887 at (-pi, 12.275), (pi, 2.275), (9.42478, 2.475)."""
    a, b, c, r, s, t = 1.0, 5.1 / (4 * math.pi ** 2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return a * (x1 - b * x0 ** 2 + c * x0 - r) ** 2 + s * (1 - t) * math.cos(x0) + s


@with_space({"x0": {"type": "uniform", "low": -5.0, "high": 10.0},
             "x1": {"type": "uniform", "low": 0.0, "high": 15.0}})
def branin(config, report):
    """Branin with an epoch resource: f + 20 (1 + sin(x0) cos(x1) / 2) 2^(1 - epoch)."""
    x0, x1 = config["x0"], config["x1"]
    _analytic(config, report, branin_value(x0, x1), 20.0 * (1.0 + 0.5 * math.sin(x0) * math.cos(x1)))


HARTMANN6_MIN = -3.32237
_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H6_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                  [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
_H6_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                         [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])


def hartmann6_value(x):
    """Hartmann-6 on [0, 1]^6; global minimum -3.32237 at (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573)."""
    x = np.asarray(x, dtype=float)
    return float(-np.sum(_H6_ALPHA * np.exp(-np.sum(_H6_A * (x - _H6_P) ** 2, axis=1))))


@with_space({f"x{i}": {"type": "uniform", "low": 0.0, "high": 1.0} for i in range(6)})
def hartmann6(config, report):
    """Hartmann-6 with an epoch resource: f + (1 + mean_i sin(3 x_i)) 2^(1 - epoch)."""
    x = [config[f"x{i}"] for i in range(6)]
    _analytic(config, report, hartmann6_value(x), 1.0 + float(np.mean(np.sin(3 * np.asarray(x)))))


def _keras_trial(config, report, model, data, batch_size):
    """Train `model` one epoch at a time on data = (x_train, y_train, x_val, y_val); report 1 - val accuracy."""
    x_train, y_train, x_val, y_val = data
    order = np.random.default_rng(config["seed"])
    for epoch in range(1, int(config["max_epochs"]) + 1):
        perm = order.permutation(len(x_train))
        model.fit(x_train[perm], y_train[perm], batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
        _, accuracy = model.evaluate(x_val, y_val, batch_size=1024, verbose=0)
        if not report(epoch, 1.0 - float(accuracy)):
            return


def demo_data(seed=0, n=1500, classes=5, features=10):
    """An offline 5-class problem: Gaussian clusters pushed through a fixed random tanh layer.

    Returns (x_train, y_train, x_val, y_val) with 1,000 training and 500 validation rows.
    """
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1.5, (classes, features))
    y = rng.integers(classes, size=n)
    x = np.tanh((centers[y] + rng.normal(0, 1.0, (n, features))) @ rng.normal(0, 1, (features, features)))
    return x[:1000].astype("float32"), y[:1000], x[1000:].astype("float32"), y[1000:]


@with_space({"lr": {"type": "loguniform", "low": 1e-4, "high": 1.0},
             "hidden": {"type": "int", "low": 4, "high": 256, "log": True},
             "act": {"type": "categorical", "choices": ["relu", "tanh"]}})
def demo(config, report):
    """A one-hidden-layer MLP (Adam, batch 64) on `demo_data`; error = 1 - validation accuracy."""
    import keras

    keras.utils.set_random_seed(int(config["seed"]) % 2 ** 31)
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(int(config["hidden"]), activation=config["act"]),
                              keras.layers.Dense(5)])
    model.compile(keras.optimizers.Adam(config["lr"]),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    _keras_trial(config, report, model, demo_data(), 64)


def _read_idx(path, dims):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 + 4 * dims or int.from_bytes(raw[2:3], "big") != 0x08 or raw[3] != dims:
        raise DatasetError(f"{path} is not an IDX file of unsigned bytes with {dims} dimensions")
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * dims)
    if data.size != int(np.prod(shape)):
        raise DatasetError(f"{path} is truncated: header says {shape}, found {data.size} bytes")
    return data.reshape(shape)


def fashion_mnist_dir(data_dir=None):
    """The directory holding Fashion-MNIST's training IDX files: `data_dir` (or $DLSUITE_HPO_DATA_DIR),
    else the cache, downloading each file from the project's canonical address (SHA-1 checked)."""
    from common import data

    data_dir = data_dir or os.environ.get(DATA_DIR_ENV) or None
    if data_dir is not None:
        return data.resolve_dataset("fashion-mnist", required=list(FASHION_MNIST_FILES), data_dir=data_dir)
    target = data.cache_root() / "fashion-mnist"
    for name, sha1 in FASHION_MNIST_FILES.items():
        data.download(FASHION_MNIST_URL + name, sha1, target)
    return target


def fashion_mnist_train(data_dir=None):
    """Fashion-MNIST's training images `(n, 28, 28)` uint8 and labels `(n,)`: from TFDS's `fashion_mnist` when
    $DLSUITE_HPO_TFDS names it (`--tfds`), else from the IDX files (`fashion_mnist_dir`)."""
    chosen = os.environ.get(TFDS_ENV)
    if chosen:
        import json

        from common import tfds_source

        chosen = json.loads(chosen)
        examples = list(tfds_source.load(chosen["name"], "train", chosen["data_dir"]))
        return (np.stack([e["image"][..., 0] for e in examples]).astype(np.uint8),
                np.asarray([e["label"] for e in examples], np.uint8))
    root = Path(fashion_mnist_dir(data_dir))
    return _read_idx(root / "train-images-idx3-ubyte.gz", 3), _read_idx(root / "train-labels-idx1-ubyte.gz", 1)


def fashion_mnist_subset(data_dir=None):
    """(x_train (4000, 28, 28, 1) float32 in [0, 1], y_train, x_val (2000, ...), y_val), a fixed seeded draw."""
    images, labels = fashion_mnist_train(data_dir)
    idx = np.random.default_rng(0).permutation(len(images))[:FASHION_TRAIN + FASHION_VAL]
    x = (images[idx] / 255.0).astype("float32")[..., None]
    y = labels[idx].astype("int64")
    return x[:FASHION_TRAIN], y[:FASHION_TRAIN], x[FASHION_TRAIN:], y[FASHION_TRAIN:]


def lenet(lr):
    """LeNet-5 with ReLU and max pooling (the book's modernised variant), plain SGD, 10 classes."""
    import keras
    from keras import layers

    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(6, 5, padding="same", activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(16, 5, activation="relu"), layers.MaxPooling2D(2), layers.Flatten(),
        layers.Dense(120, activation="relu"), layers.Dense(84, activation="relu"), layers.Dense(10)])
    model.compile(keras.optimizers.SGD(lr), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


@with_space({"learning_rate": {"type": "loguniform", "low": 1e-2, "high": 1.0},
             "batch_size": {"type": "int", "low": 32, "high": 256}})
def fashion_mnist(config, report):
    """The book's HPO objective (19.1): LeNet with SGD, learning rate and batch size tuned, epochs the resource."""
    import keras

    data = fashion_mnist_subset()
    keras.utils.set_random_seed(int(config["seed"]) % 2 ** 31)
    _keras_trial(config, report, lenet(config["learning_rate"]), data, int(config["batch_size"]))
