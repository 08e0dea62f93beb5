"""Training overhead of common.training.fit (per-epoch checkpoints, metrics.json,
TensorBoard, final model) against a bare `model.fit` on the same model and data.

    python -m benchmarks.spine_overhead
"""
import tempfile
import time

import common  # noqa: F401  (quiet TensorFlow import)
import keras
import numpy as np
import tensorflow as tf

from benchmarks.harness import report
from common import training

EPOCHS, N, FEATURES, BATCH = 5, 50_000, 64, 256


def _model():
    training.set_seed(0)
    model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(256, activation="relu"),
                              keras.layers.Dense(256, activation="relu"), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    return model


def _bare(data):
    model = _model()
    tic = time.perf_counter()
    model.fit(data, epochs=EPOCHS, verbose=0)
    return time.perf_counter() - tic


def _spine(data):
    model = _model()
    with tempfile.TemporaryDirectory() as tmp:
        tic = time.perf_counter()
        training.fit(model, data, training.Run(f"{tmp}/run"), epochs=EPOCHS, verbose=0)
        return time.perf_counter() - tic


def main(repeats=3):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, FEATURES)).astype("float32")
    y = x[:, :8].sum(1, keepdims=True)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH).prefetch(tf.data.AUTOTUNE)
    _model().fit(data.take(4), epochs=1, verbose=0)  # warm-up: thread pools, first tracing
    bare_s, spine_s = float("inf"), float("inf")
    for _ in range(repeats):  # alternate, keep the best of each: robust to a busy machine
        bare_s = min(bare_s, _bare(data))
        spine_s = min(spine_s, _spine(data))
    bare_line = report("bare model.fit (MLP 64-256-256-1)", "examples", N * EPOCHS, bare_s, epochs=EPOCHS)
    report("common.training.fit (same model, checkpoints + metrics + TensorBoard + model.keras + curves.png)",
           "examples", N * EPOCHS, spine_s, epochs=EPOCHS, slowdown_vs_bare=round(spine_s / bare_s, 3),
           bare_rate=bare_line["rate"])


if __name__ == "__main__":
    main()
