"""common.distribute: strategies, logical CPU replicas, batch splitting, loss scaling."""
import json
import warnings

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


def _pieces_of(x, batch_size, shard):
    """`shard`'s pieces of every global batch of `batch_size` rows of `x`, one dataset element each."""
    rows = [x[start + (shard.first + r) * shard.replica_batch:][:shard.replica_batch]
            for start in range(0, len(x), batch_size) for r in range(shard.count)]
    return tf.data.Dataset.from_tensor_slices(np.stack(rows))


def test_own_input_feeds_each_replica_its_piece_of_the_global_batch():
    x = np.arange(64, dtype=np.float32).reshape(32, 2)
    shards = []
    one = distribute.distribute_own_input(tf.distribute.get_strategy(), 8,
                                          lambda shard: shards.append(shard) or _pieces_of(x, 8, shard))
    assert shards == [distribute.InputShard(0, 1, 1, 8)] and isinstance(one, tf.data.Dataset)
    steps = [b.numpy() for b in one]
    assert len(steps) == 4 and all(b.shape == (8, 2) for b in steps)
    two = distribute.make_strategy("mirrored", devices=2)
    mirrored = distribute.distribute_own_input(two, 8, lambda shard: shards.append(shard) or _pieces_of(x, 8, shard))
    assert shards[1:] == [distribute.InputShard(0, 2, 2, 4)]
    assert mirrored.cardinality == 4  # Keras reads it as the steps per epoch (TensorFlow said 8)
    both = [np.concatenate([t.numpy() for t in two.experimental_local_results(b)]) for b in mirrored]
    assert len(both) == 4
    for a, b in zip(both, steps):  # the same global batches as one replica
        np.testing.assert_array_equal(a, b)
    with pytest.raises(UsageError) as err:
        distribute.distribute_own_input(two, 33, lambda shard: _pieces_of(x, 33, shard))
    assert str(err.value) == "--batch-size 33 does not split evenly over 2 replicas; use a multiple of 2"


def test_fit_on_own_input_takes_the_steps_of_one_replica():
    x, y = toy.load(None)
    data = np.concatenate([x, y], axis=1)

    def fit(strategy):
        training.set_seed(0)
        with strategy.scope():
            model = toy.build(toy.ToyConfig())
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for epoch in range(2):
                own = distribute.distribute_own_input(
                    strategy, 16, lambda shard: _pieces_of(data, 16, shard).map(lambda b: (b[:, :4], b[:, 4:])))
                history = model.fit(own, verbose=0)
        assert not [w for w in caught if "ran out of data" in str(w.message)]
        return model, history

    (m1, h1), (m2, h2) = fit(tf.distribute.get_strategy()), fit(distribute.make_strategy("mirrored", devices=2))
    # 128 rows, --batch-size 16: 8 steps an epoch on one replica and on two (Keras warned that the input ran
    # out of data when it took the cardinality of TensorFlow's distributed dataset, 16, for the steps)
    assert int(m1.optimizer.iterations.numpy()) == int(m2.optimizer.iterations.numpy()) == 16
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h1.history["loss"], h2.history["loss"], rtol=1e-5)
