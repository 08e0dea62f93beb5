"""common.distribute: strategies, logical CPU replicas, batch splitting, loss scaling."""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from common import distribute, training
from common.data import shuffle_for_epoch
from common.errors import UsageError
from tests.cli_helpers import fake_worker_strategy
from tests.common import toy


def _train_toy(strategy, run_dir, epochs=3):
    cfg = toy.ToyConfig(epochs=epochs)
    training.set_seed(cfg.seed)
    x, y = toy.load(None)
    with strategy.scope():
        model = toy.build(cfg)
    data = lambda epoch: shuffle_for_epoch(tf.data.Dataset.from_tensor_slices((x, y)), 128, 0, epoch).batch(16)
    history = training.fit(model, data, training.Run(run_dir), epochs=cfg.epochs, verbose=0)
    return model, history


def test_two_logical_cpu_replicas_match_one(tmp_path):
    one = distribute.make_strategy("default")
    two = distribute.make_strategy("mirrored", devices=2)
    assert one.num_replicas_in_sync == 1 and two.num_replicas_in_sync == 2
    m1, h1 = _train_toy(one, tmp_path / "one")
    m2, h2 = _train_toy(two, tmp_path / "two")
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose([h["loss"] for h in h1], [h["loss"] for h in h2], rtol=1e-4)
    assert h1[-1]["loss"] < 0.5 * h1[0]["loss"]  # it really learned
    assert json.loads((tmp_path / "two" / "metrics.json").read_text())[-1]["epoch"] == 3


class ManualLossModel(keras.Model):
    """A custom train_step computing its own mean loss, scaled with distribute.scale_loss."""

    def __init__(self, scale):
        super().__init__()
        self.dense = keras.layers.Dense(1)
        self.scale = scale

    def call(self, x):
        return self.dense(x)

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(self(x) - y))
            scaled = distribute.scale_loss(loss) if self.scale else loss
        grads = tape.gradient(scaled, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return {"loss": loss}


def _custom(strategy, scale):
    x, y = toy.load(None)
    training.set_seed(0)
    with strategy.scope():
        model = ManualLossModel(scale)
        model.compile(keras.optimizers.SGD(0.05))
        model(x[:1])
    model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(16), epochs=2, verbose=0)
    return model.get_weights()


def test_scale_loss_makes_custom_train_step_replica_invariant():
    single = _custom(distribute.make_strategy("default"), scale=True)
    mirrored = _custom(distribute.make_strategy("mirrored", devices=2), scale=True)
    unscaled = _custom(distribute.make_strategy("mirrored", devices=2), scale=False)
    for a, b in zip(single, mirrored):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert max(np.abs(a - b).max() for a, b in zip(single, unscaled)) > 1e-3  # the scaling matters


def test_auto_picks_default_without_tf_config_and_mirrored_for_devices(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.make_strategy("auto") is tf.distribute.get_strategy()
    assert isinstance(distribute.make_strategy("auto", devices=2), tf.distribute.MirroredStrategy)
    assert isinstance(distribute.make_strategy("one-device"), tf.distribute.OneDeviceStrategy)


def test_bad_strategy_values_are_one_line_usage_errors(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UsageError, match="unknown strategy 'ring'"):
        distribute.make_strategy("ring")
    with pytest.raises(UsageError, match="needs TF_CONFIG"):
        distribute.make_strategy("multi-worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(UsageError, match="TF_CONFIG is not valid JSON"):
        distribute.make_strategy("multi-worker")


def test_too_late_device_split_says_so_in_one_line():
    tf.constant(1.0) + 1.0  # the runtime is initialised (conftest made 2 logical CPUs)
    distribute.configure_devices(2)  # already satisfied: no error
    with pytest.raises(UsageError) as err:
        distribute.configure_devices(3)
    assert "already started with 2 CPU device(s)" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UsageError, match="already started with 2"):
        distribute.make_strategy("mirrored", devices=4)


def test_global_batch_splits_evenly_or_fails():
    two = distribute.make_strategy("mirrored", devices=2)
    assert distribute.per_replica_batch_size(32, two) == 16
    with pytest.raises(UsageError, match="multiple of 2"):
        distribute.per_replica_batch_size(33, two)


@pytest.mark.parametrize("task_type,task_id,cluster,expected", [
    ("worker", 0, {"worker": ["a:1", "b:2"]}, True),
    ("worker", 1, {"worker": ["a:1", "b:2"]}, False),
    ("chief", 0, {"chief": ["a:1"], "worker": ["b:2"]}, True),
    ("worker", 0, {"chief": ["a:1"], "worker": ["b:2"]}, False),
])
def test_chief_election(task_type, task_id, cluster, expected):
    assert distribute.is_chief(fake_worker_strategy(task_type, task_id, cluster)) is expected
    assert distribute.is_chief(tf.distribute.get_strategy()) is True


def test_worker_shard_counts_the_chief_first_and_splits_the_batch():
    workers = {"worker": ["a:1", "b:2"]}
    assert distribute.worker_shard(fake_worker_strategy("worker", 1, workers), 512) == (1, 2, 256)
    with_chief = {"chief": ["a:1"], "worker": ["b:2", "c:3"]}
    assert distribute.worker_shard(fake_worker_strategy("chief", 0, with_chief), 33) == (0, 3, 11)
    assert distribute.worker_shard(fake_worker_strategy("worker", 1, with_chief), 33) == (2, 3, 11)
    assert distribute.worker_shard(tf.distribute.get_strategy(), 33) == (0, 1, 33)
    with pytest.raises(UsageError) as err:  # 513 // 2 would silently drop a row from every global batch
        distribute.worker_shard(fake_worker_strategy("worker", 0, workers), 513)
    assert str(err.value) == "--batch-size 513 does not split evenly over 2 workers; use a multiple of 2"
