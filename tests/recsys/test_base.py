"""recsys.base.ScaledLossModel: with plain SGD (no Adam normalisation to hide a scaling error),
one epoch on 2 mirrored replicas gives the single-replica weights."""
import numpy as np
import pytest
import tensorflow as tf

import keras
from common.distribute import make_strategy
from recsys import fm, mf


def _train(strategy, build, data, batch):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build()
    model.fit(tf.data.Dataset.from_tensor_slices(data).batch(batch), epochs=1, verbose=0)
    return [np.asarray(w) for w in model.weights]


@pytest.mark.parametrize("name", ["mf", "deepfm"])
def test_two_replicas_give_the_single_replica_update_with_sgd(name):
    rng = np.random.default_rng(0)
    if name == "mf":
        data = ((rng.integers(0, 20, 256).astype("int32"), rng.integers(0, 30, 256).astype("int32")),
                rng.integers(1, 6, 256).astype("float32"))

        def build():
            model = mf.MatrixFactorization(20, 30, factors=4, weight_decay=0.1, global_mean=3.0)
            model.compile(keras.optimizers.SGD(0.5))
            model((np.zeros(1, np.int32), np.zeros(1, np.int32)))
            return model
    else:
        data = (rng.integers(0, 12, (256, 3)).astype("int32"), rng.integers(0, 2, 256).astype("float32"))

        def build():
            model = fm.FactorizationMachine(12, factors=3, hidden=[5], weight_decay=0.1)
            model.compile(keras.optimizers.SGD(0.5))
            model(data[0][:1])
            return model
    single = _train(make_strategy("default"), build, data, 32)
    mirrored = _train(make_strategy("mirrored", devices=2), build, data, 32)
    moved = max(float(np.abs(a - b).max()) for a, b in zip(single, _initial(build)))
    assert moved > 1e-2  # training changed the weights
    for a, b in zip(single, mirrored):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def _initial(build):
    keras.utils.set_random_seed(0)
    return [np.asarray(w) for w in build().weights]
