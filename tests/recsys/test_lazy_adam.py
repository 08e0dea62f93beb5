"""recsys.lazy_adam: one sparse step against NumPy's Adam on the touched rows only (duplicates summed),
dense gradients exactly Keras' Adam; MF with --optimizer lazy_adam learns, 2 replicas = 1, resumes exactly."""
import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import root_mean_squared_error as rmse

from recsys import mf
from recsys.lazy_adam import LazyAdam, deduplicate
from recsys.splits import load_split
from tests.cli_helpers import one_replica_vs_two, resume_matches_uninterrupted

B1, B2, EPS = 0.9, 0.999, 1e-7  # Keras' Adam defaults


def test_deduplicate_sums_repeated_indices():
    slices = tf.IndexedSlices(tf.constant([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]),
                              tf.constant([4, 1, 4, 4]), tf.constant([6, 2]))
    indices, values = deduplicate(slices)
    assert indices.numpy().tolist() == [4, 1]
    np.testing.assert_array_equal(values.numpy(), [[13.0, 16.0], [3.0, 4.0]])


def test_sparse_step_is_adam_on_the_touched_rows_only():
    rng = np.random.default_rng(0)
    table = rng.normal(size=(6, 3)).astype(np.float32)
    m0 = rng.normal(size=(6, 3)).astype(np.float32)
    v0 = rng.uniform(0.1, 1.0, size=(6, 3)).astype(np.float32)
    grad_rows = rng.normal(size=(4, 3)).astype(np.float32)
    indices = np.array([4, 1, 4, 0])  # row 4 twice: its gradient is the sum of both
    variable = keras.Variable(table)
    opt = LazyAdam(0.05)
    opt.build([variable])
    opt._momentums[0].assign(m0)
    opt._velocities[0].assign(v0)
    opt.iterations.assign(4)  # this is step t = 5: the bias corrections use beta ** 5
    opt.apply_gradients([(tf.IndexedSlices(tf.constant(grad_rows), tf.constant(indices), tf.constant([6, 3])),
                          variable)])

    g = np.zeros_like(table)
    np.add.at(g, indices, grad_rows)
    touched = np.array([0, 1, 4])
    m, v, expected = m0.copy(), v0.copy(), table.copy()
    m[touched] = B1 * m0[touched] + (1 - B1) * g[touched]
    v[touched] = B2 * v0[touched] + (1 - B2) * g[touched] ** 2
    alpha = 0.05 * np.sqrt(1 - B2 ** 5) / (1 - B1 ** 5)
    expected[touched] -= alpha * m[touched] / (np.sqrt(v[touched]) + EPS)
    np.testing.assert_allclose(opt._momentums[0].numpy(), m, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(opt._velocities[0].numpy(), v, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-5, atol=1e-6)
    untouched = np.array([2, 3, 5])  # neither the rows nor their moments move (the textbook Adam would decay m, v)
    np.testing.assert_array_equal(variable.numpy()[untouched], table[untouched])
    np.testing.assert_array_equal(opt._momentums[0].numpy()[untouched], m0[untouched])
    np.testing.assert_array_equal(opt._velocities[0].numpy()[untouched], v0[untouched])
    assert abs(expected[4] - table[4]).max() > 1e-3  # the step is not negligible


def test_dense_gradients_are_exactly_keras_adam():
    rng = np.random.default_rng(1)
    start = rng.normal(size=(5, 4)).astype(np.float32)
    grads = [rng.normal(size=(5, 4)).astype(np.float32) for _ in range(3)]
    results = []
    for cls in (keras.optimizers.Adam, LazyAdam):
        variable = keras.Variable(start)
        opt = cls(0.01, amsgrad=True)
        for grad in grads:
            opt.apply_gradients([(tf.constant(grad), variable)])
        results.append((variable.numpy(), opt._momentums[0].numpy(), opt._velocities[0].numpy()))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    assert abs(results[0][0] - start).max() > 1e-3


def test_mf_lazy_adam_learns_and_two_replicas_match_one(capsys):
    single, mirrored = one_replica_vs_two(mf.main, ["--demo", "--epochs", 1, "--optimizer", "lazy_adam"], capsys)
    assert mirrored["rmse"] == pytest.approx(single["rmse"], abs=1e-2)  # Adam amplifies rounding (see test_mf)
    assert mirrored["loss"] == pytest.approx(single["loss"], rel=1e-2)
    train, test = load_split(None, True, "random", 0.1, 0)
    baseline = rmse(test.ratings, np.full(len(test), train.ratings.mean()))
    assert single["rmse"] < baseline - 0.05  # the global mean scores ~0.95 on the demo split
    assert json.loads(Path("single/config.json").read_text())["optimizer"] == "lazy_adam"
    model = keras.models.load_model(Path("single/model.keras"))  # LazyAdam is registered: the model loads
    assert isinstance(model.optimizer, LazyAdam) and model.dense_gradients is False
    assert [w.shape for w in model.get_weights()] == [(300, 16), (400, 16), (300, 1), (400, 1)]  # built on load
    assert len(model.optimizer.variables) == 2 + 2 * 4  # iterations, learning rate, m and v of each table


def test_mf_lazy_adam_resumes_exactly(capsys):
    weights = resume_matches_uninterrupted(mf.main, ["--demo", "--optimizer", "lazy_adam"], 2, capsys)
    assert len(weights) == 4
