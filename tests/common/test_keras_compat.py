"""common.keras_compat: the multi-worker reduce patch is still needed, is right, and is applied only for a
multi-worker strategy (keras-team/keras#20585)."""
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from keras.src.backend.tensorflow import trainer

from common import keras_compat
from common.distribute import make_strategy
from tests.cli_helpers import ROOT


def _replica_logs(strategy):
    """Per-replica step logs as fit's train step returns them: a scalar loss and a vector, replica r holding
    r + 1 and [r, 2r]."""
    def step():
        r = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.float32)
        return {"loss": r + 1.0, "vec": tf.stack([r, 2 * r])}

    return strategy.run(tf.function(step))


def test_keras_still_fails_on_scalar_logs_where_several_workers_reduce(monkeypatch):
    """Keras's multi-worker branch reduces every log with axis=0, which fails on a scalar. When a Keras
    upgrade fixes it, this test fails: drop the patch."""
    strategy = make_strategy("mirrored", 2)
    logs = _replica_logs(strategy)
    monkeypatch.setattr(trainer, "_collective_all_reduce_multi_worker", lambda s: True)
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError)):
        keras_compat._original_reduce_per_replica(logs, strategy, "auto")
    fixed = keras_compat.reduce_per_replica(logs, strategy, "auto")
    assert float(fixed["loss"]) == pytest.approx(1.5)  # the mean of 1 and 2
    np.testing.assert_allclose(fixed["vec"].numpy(), 0.75)  # axis 0 as Keras: the mean of [0, 0, 1, 2]


def test_outside_several_workers_keras_reduces_as_before():
    strategy = make_strategy("mirrored", 2)
    logs = _replica_logs(strategy)
    for reduction in ("auto", "sum", "first", "concat"):
        ours = keras_compat.reduce_per_replica(logs, strategy, reduction)
        theirs = keras_compat._original_reduce_per_replica(logs, strategy, reduction)
        for key in ("loss", "vec"):
            np.testing.assert_array_equal(np.asarray(ours[key]), np.asarray(theirs[key]))


def test_the_patch_is_applied_only_when_a_multi_worker_strategy_is_made():
    code = ("import common, common.training; from keras.src.backend.tensorflow import trainer; "
            "from common import keras_compat; print(trainer.reduce_per_replica is keras_compat.reduce_per_replica); "
            "keras_compat.patch_multi_worker_reduce(); "
            "print(trainer.reduce_per_replica is keras_compat.reduce_per_replica)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
