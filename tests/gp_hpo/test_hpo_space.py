import json
import math

import numpy as np
import pytest
from scipy import stats

from common.errors import UsageError
from gp_hpo.hpo.space import ConfigSpace

SPACE = {"lr": {"type": "loguniform", "low": 1e-4, "high": 1.0},
         "hidden": {"type": "int", "low": 4, "high": 256},
         "act": {"type": "categorical", "choices": ["relu", "tanh"]},
         "dropout": {"type": "uniform", "low": 0.0, "high": 0.5}}


def draws(space, n=20000, seed=0):
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def test_sampling_distributions():
    samples = draws(ConfigSpace(SPACE))
    log_lr = np.log10([s["lr"] for s in samples])
    # log-uniform: log10(lr) ~ U(-4, 0)
    assert stats.kstest(log_lr, stats.uniform(-4, 4).cdf).pvalue > 0.01
    assert log_lr.mean() == pytest.approx(-2.0, abs=0.03)
    hidden = np.array([s["hidden"] for s in samples])
    assert hidden.min() == 4 and hidden.max() == 256 and hidden.dtype.kind == "i"
    counts = np.bincount(hidden - 4, minlength=253)
    assert stats.chisquare(counts).pvalue > 0.01  # every integer in [4, 256] equally likely
    assert np.mean([s["act"] == "relu" for s in samples]) == pytest.approx(0.5, abs=0.015)
    assert stats.kstest([s["dropout"] for s in samples], stats.uniform(0, 0.5).cdf).pvalue > 0.01


def test_log_int_is_uniform_in_log_scale():
    space = ConfigSpace({"units": {"type": "int", "low": 1, "high": 1000, "log": True}})
    units = np.array([s["units"] for s in draws(space)])
    assert units.min() >= 1 and units.max() <= 1000
    # P(units <= 9) = log(10) / log(1001) = 0.3333 for floor(exp(U(log 1, log 1001)))
    assert np.mean(units <= 9) == pytest.approx(math.log(10) / math.log(1001), abs=0.01)


def test_unit_cube_encoding():
    space = ConfigSpace(SPACE)
    assert space.dim == 5 and space.names == ["lr", "hidden", "act", "dropout"]
    x = space.to_unit({"lr": 1e-2, "hidden": 130, "act": "tanh", "dropout": 0.125})
    np.testing.assert_allclose(x, [0.5, 0.5, 0.0, 1.0, 0.25])  # 1e-2 is the log-midpoint of [1e-4, 1]
    assert space.from_unit(x) == {"lr": pytest.approx(1e-2), "hidden": 130, "act": "tanh", "dropout": 0.125}
    assert space.from_unit(np.array([1.2, -0.1, 0.7, 0.2, 0.5])) == {
        "lr": 1.0, "hidden": 4, "act": "relu", "dropout": 0.25}  # clipped, argmax one-hot
    for config in draws(space, 200):
        back = space.from_unit(space.to_unit(config))
        assert back["hidden"] == config["hidden"] and back["act"] == config["act"]
        assert back["lr"] == pytest.approx(config["lr"]) and back["dropout"] == pytest.approx(config["dropout"])


def test_optuna_distributions():
    import optuna

    d = ConfigSpace(SPACE).distributions()
    assert d["lr"] == optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)
    assert d["hidden"] == optuna.distributions.IntDistribution(4, 256)
    assert d["act"] == optuna.distributions.CategoricalDistribution(["relu", "tanh"])


@pytest.mark.parametrize("spec,message", [
    ({}, "configuration space is empty"),
    ({"lr": {"type": "loguniform", "low": 0, "high": 1}}, "'lr': a log scale needs low > 0"),
    ({"lr": {"type": "uniform", "low": 1, "high": 1}}, "'lr': needs low < high"),
    ({"n": {"type": "int", "low": 8, "high": 4}}, "'n': needs low < high"),
    ({"n": {"type": "int", "low": 1.5, "high": 4}}, "int bounds must be whole numbers"),
    ({"a": {"type": "categorical", "choices": []}}, "non-empty list of choices"),
    ({"a": {"type": "categorical", "choices": ["x", "x"]}}, "choices must be distinct"),
    ({"a": {"type": "normal", "low": 0, "high": 1}}, "unknown type 'normal'"),
    ({"a": {"type": "uniform", "low": 0}}, "missing ['high']"),
    ({"a": {"type": "uniform", "low": 0, "high": 1, "step": 2}}, "unknown keys ['step']"),
    ({"a": {"type": "uniform", "low": "0", "high": 1}}, "low must be a finite number"),
    ({"seed": {"type": "int", "low": 0, "high": 9}}, "'seed' is reserved"),
    ({"a": 3}, "expected an object with a \"type\""),
])
def test_inconsistent_spaces_are_one_line_errors(spec, message):
    with pytest.raises(UsageError) as e:
        ConfigSpace(spec)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_space_file(tmp_path):
    path = tmp_path / "space.json"
    path.write_text(json.dumps(SPACE))
    assert ConfigSpace.from_json(path) == ConfigSpace(SPACE)
    path.write_text('{"lr": {"type": "uniform",\n "low": 0 "high": 1}}')
    with pytest.raises(UsageError, match=r"space.json: not valid JSON \(Expecting ',' delimiter at line 2"):
        ConfigSpace.from_json(path)
    path.write_text("{}")
    with pytest.raises(UsageError, match="space.json: the configuration space is empty"):
        ConfigSpace.from_json(path)
    with pytest.raises(UsageError, match="cannot read"):
        ConfigSpace.from_json(tmp_path / "missing.json")
