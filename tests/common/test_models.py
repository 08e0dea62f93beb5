"""common.models.ScaledLossModel: with plain SGD (no Adam normalisation to hide a scaling error),
one epoch on 2 mirrored replicas gives the single-replica weights."""
import keras
import numpy as np
import tensorflow as tf
from keras import ops

from common.distribute import make_strategy
from common.models import ScaledLossModel


class EmbeddingRegression(ScaledLossModel):
    """y ~ w_i . x + b_i with an L2 penalty on the looked-up rows (a loss Keras' regularizers would not scale)."""

    def __init__(self):
        super().__init__()
        self.w = keras.layers.Embedding(10, 3)
        self.b = keras.layers.Embedding(10, 1, embeddings_initializer="zeros")

    def call(self, inputs):
        ids, x = inputs
        return ops.sum(self.w(ids) * x, axis=-1) + self.b(ids)[:, 0]

    def training_loss(self, batch):
        (ids, x), y = batch
        return ops.mean(ops.square(self((ids, x)) - y)) + 0.1 * ops.mean(ops.sum(ops.square(self.w(ids)), axis=-1))


def _build():
    keras.utils.set_random_seed(0)
    model = EmbeddingRegression()
    model.compile(keras.optimizers.SGD(0.5))
    model((np.zeros(1, np.int32), np.zeros((1, 3), np.float32)))
    return model


def _train(strategy, data):
    with strategy.scope():
        model = _build()
    model.fit(tf.data.Dataset.from_tensor_slices(data).batch(32), epochs=1, verbose=0)
    return [np.asarray(w) for w in model.weights]


def test_two_replicas_give_the_single_replica_update_with_sgd():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 3)).astype("float32")
    data = ((rng.integers(0, 10, 256).astype("int32"), x), (x.sum(1) + 1).astype("float32"))
    single = _train(make_strategy("default"), data)
    mirrored = _train(make_strategy("mirrored", devices=2), data)
    initial = [np.asarray(w) for w in _build().weights]
    assert max(float(np.abs(a - b).max()) for a, b in zip(single, initial)) > 1e-2  # training moved the weights
    for a, b in zip(single, mirrored):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_loss_is_reported_unscaled():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 3)).astype("float32")
    data = ((rng.integers(0, 10, 64).astype("int32"), x), x.sum(1).astype("float32"))
    with make_strategy("mirrored", devices=2).scope():
        model = _build()
    expected = float(model.training_loss(tuple(tf.nest.map_structure(tf.constant, data))))
    model.optimizer.learning_rate = 0.0
    logs = model.fit(tf.data.Dataset.from_tensor_slices(data).batch(64), epochs=1, verbose=0).history
    np.testing.assert_allclose(logs["loss"][0], expected, rtol=1e-5)


class DenseGradientRegression(EmbeddingRegression):
    dense_gradients = True


class OneHotRegression(EmbeddingRegression):
    """The same model with lookups as one-hot matrix products: its gradients are dense tensors."""

    def _rows(self, layer, ids):
        if not layer.built:
            layer.build()
        return ops.matmul(ops.one_hot(ids, 10), layer.embeddings)

    def call(self, inputs):
        ids, x = inputs
        return ops.sum(self._rows(self.w, ids) * x, axis=-1) + self._rows(self.b, ids)[:, 0]

    def training_loss(self, batch):
        (ids, x), y = batch
        return ops.mean(ops.square(self((ids, x)) - y)) + 0.1 * ops.mean(ops.sum(ops.square(self._rows(self.w, ids)),
                                                                                 axis=-1))


def test_dense_gradients_give_textbook_adam_on_one_and_two_replicas():
    # Keras' Adam updates the moments of only the looked-up rows for IndexedSlices gradients;
    # with dense_gradients it is the textbook Adam of a model whose gradients are dense (one-hot
    # lookups), on one replica and on two mirrored ones.
    rng = np.random.default_rng(2)
    x = rng.normal(size=(128, 3)).astype("float32")
    data = ((rng.integers(0, 10, 128).astype("int32"), x), (x.sum(1) + 1).astype("float32"))
    weights = {}
    for cls in (OneHotRegression, DenseGradientRegression, EmbeddingRegression):
        for name, strategy in (("one", make_strategy("default")), ("two", make_strategy("mirrored", devices=2))):
            with strategy.scope():
                keras.utils.set_random_seed(0)
                model = cls()
                model.compile(keras.optimizers.Adam(0.05))
                model((np.zeros(1, np.int32), np.zeros((1, 3), np.float32)))
            model.fit(tf.data.Dataset.from_tensor_slices(data).batch(32), epochs=2, verbose=0)
            weights[cls.__name__, name] = [np.asarray(w) for w in model.weights]
    reference = weights["OneHotRegression", "one"]
    for key in [("OneHotRegression", "two"), ("DenseGradientRegression", "one"), ("DenseGradientRegression", "two")]:
        for a, b in zip(reference, weights[key]):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=str(key))
    # the sparse path is another algorithm (the check above can fail)
    assert max(float(np.abs(a - b).max()) for a, b in zip(reference, weights["EmbeddingRegression", "one"])) > 1e-2
