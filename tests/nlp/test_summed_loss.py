"""nlp.summed_loss: one SGD step differentiates the sum of the per-example losses (by hand), the logged loss is
their mean, per row or per `example_count`."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from nlp.summed_loss import SummedLossModel


class Lookup(SummedLossModel):
    """Per example (w[id] - target)^2 over a table `w` of 3 numbers starting at 0; `count` examples when given."""

    def __init__(self, count=None):
        super().__init__()
        self.count = count
        self.w = self.add_weight(shape=(3,), name="w", initializer="zeros")
        self.built = True

    def example_losses(self, batch):
        return tf.square(tf.gather(self.w.value, batch["ids"]) - batch["targets"])

    def example_count(self, batch):
        return None if self.count is None else tf.constant(float(self.count))


BATCH = {"ids": tf.constant([0, 0, 2]), "targets": tf.constant([1.0, 3.0, 2.0])}


def test_one_sgd_step_follows_the_gradient_of_the_summed_losses():
    model = Lookup()
    model.compile(keras.optimizers.SGD(0.1))
    logs = model.train_step(BATCH)
    # losses 1, 9, 4 (sum 14); d sum / d w = [2(0 - 1) + 2(0 - 3), 0, 2(0 - 2)] = [-8, 0, -4]
    np.testing.assert_allclose(model.w.numpy(), [0.8, 0.0, 0.4], rtol=1e-6)
    assert float(logs["loss"]) == pytest.approx(14 / 3)  # the mean per example


def test_the_logged_loss_is_per_example_count_weighted_over_steps():
    model = Lookup(count=2)
    model.compile(keras.optimizers.SGD(0.0))
    assert float(model.train_step(BATCH)["loss"]) == pytest.approx(7.0)  # 14 over 2 examples
    model.count = 5
    # the second step's 14 over 5 examples: (14 + 14) / (2 + 5) over both steps
    assert float(model.train_step(BATCH)["loss"]) == pytest.approx(4.0)
    assert [m.name for m in model.metrics] == ["loss"]


def test_a_model_must_define_its_example_losses():
    with pytest.raises(NotImplementedError):
        SummedLossModel().example_losses(BATCH)
