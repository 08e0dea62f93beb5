"""The configuration space: uniform, log-uniform, integer and categorical hyperparameters.

A space is a dict `name -> spec`, in Python or in a JSON file (`--space FILE.json`):

    {"lr": {"type": "loguniform", "low": 1e-4, "high": 1.0},
     "hidden": {"type": "int", "low": 4, "high": 256},
     "act": {"type": "categorical", "choices": ["relu", "tanh"]}}

`int` takes an optional `"log": true` (sampled uniformly in log scale). Every mistake is
one `UsageError` line naming the parameter. `ConfigSpace` samples configurations, maps
them to and from the unit cube the Bayesian-optimization searcher models (log scales
respected, categoricals one-hot) and gives the equivalent Optuna distributions.
"""
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.errors import UsageError

TYPES = ("uniform", "loguniform", "int", "categorical")
RESERVED = ("max_epochs", "seed")
_KEYS = {"uniform": {"low", "high"}, "loguniform": {"low", "high"}, "int": {"low", "high", "log"},
         "categorical": {"choices"}}


@dataclass(frozen=True)
class Param:
    """One hyperparameter. `low`/`high` are inclusive bounds (int: whole numbers)."""

    name: str
    type: str
    low: float = None
    high: float = None
    log: bool = False
    choices: tuple = ()

    @property
    def width(self):
        """Columns in the unit-cube encoding: one per choice for a categorical, else 1."""
        return len(self.choices) if self.type == "categorical" else 1

    def _warp(self, value):
        return math.log(value) if self.log else float(value)

    def sample(self, rng):
        """One value drawn with `rng` (np.random.Generator), uniform in the parameter's scale."""
        if self.type == "categorical":
            return self.choices[int(rng.integers(len(self.choices)))]
        if self.type == "int":
            if self.log:
                return int(min(self.high, math.floor(math.exp(rng.uniform(math.log(self.low),
                                                                           math.log(self.high + 1))))))
            return int(rng.integers(self.low, self.high + 1))
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))) if self.log
                     else rng.uniform(self.low, self.high))

    def to_unit(self, value):
        """Encoding (width,) in [0, 1]: one-hot for a categorical, else the position in the (log) range."""
        if self.type == "categorical":
            return [1.0 if c == value else 0.0 for c in self.choices]
        if self.high == self.low:
            return [0.5]
        lo, hi = self._warp(self.low), self._warp(self.high)
        return [(self._warp(value) - lo) / (hi - lo)]

    def from_unit(self, u):
        """Inverse of `to_unit` (argmax for a categorical, rounding for an int, clipping to the range)."""
        if self.type == "categorical":
            return self.choices[int(np.argmax(u))]
        lo, hi = self._warp(self.low), self._warp(self.high)
        x = lo + float(np.clip(u[0], 0.0, 1.0)) * (hi - lo)
        value = math.exp(x) if self.log else x
        if self.type == "int":
            return int(min(self.high, max(self.low, round(value))))
        return float(min(self.high, max(self.low, value)))

    def distribution(self):
        """The equivalent `optuna.distributions` object."""
        from optuna import distributions as d

        if self.type == "categorical":
            return d.CategoricalDistribution(list(self.choices))
        if self.type == "int":
            return d.IntDistribution(int(self.low), int(self.high), log=self.log)
        return d.FloatDistribution(self.low, self.high, log=self.log)


def _number(name, key, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f"parameter {name!r}: {key} must be a finite number, got {value!r}")
    return value


def parse_param(name, spec):
    """A `Param` from its spec dict, or a one-line UsageError saying what is wrong."""
    if not isinstance(name, str) or not name:
        raise UsageError(f"parameter names must be non-empty strings, got {name!r}")
    if name in RESERVED:
        raise UsageError(f"parameter {name!r} is reserved (the tuner sets {' and '.join(RESERVED)}); rename it")
    if not isinstance(spec, dict) or "type" not in spec:
        raise UsageError(f"parameter {name!r}: expected an object with a \"type\" ({', '.join(TYPES)}), got {spec!r}")
    kind = spec["type"]
    if kind not in TYPES:
        raise UsageError(f"parameter {name!r}: unknown type {kind!r} (expected one of {', '.join(TYPES)})")
    unknown = set(spec) - _KEYS[kind] - {"type"}
    missing = _KEYS[kind] - {"log"} - set(spec)
    if unknown or missing:
        what = f"unknown keys {sorted(unknown)}" if unknown else f"missing {sorted(missing)}"
        raise UsageError(f"parameter {name!r}: {kind} takes {sorted(_KEYS[kind])}; {what}")
    if kind == "categorical":
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise UsageError(f"parameter {name!r}: categorical needs a non-empty list of choices, got {choices!r}")
        if any(not isinstance(c, (str, int, float, bool)) and c is not None for c in choices):
            raise UsageError(f"parameter {name!r}: choices must be strings, numbers, booleans or null")
        if len({json.dumps(c) for c in choices}) != len(choices):
            raise UsageError(f"parameter {name!r}: choices must be distinct, got {choices!r}")
        return Param(name, kind, choices=tuple(choices))
    low, high = _number(name, "low", spec["low"]), _number(name, "high", spec["high"])
    log = kind == "loguniform" or bool(spec.get("log", False))
    if kind == "int" and (low != int(low) or high != int(high)):
        raise UsageError(f"parameter {name!r}: int bounds must be whole numbers, got low={low}, high={high}")
    if low > high or (kind != "int" and low == high):
        raise UsageError(f"parameter {name!r}: needs low < high, got low={low}, high={high}")
    if log and low <= 0:
        raise UsageError(f"parameter {name!r}: a log scale needs low > 0, got low={low}")
    if kind == "int":
        return Param(name, kind, int(low), int(high), log)
    return Param(name, kind, float(low), float(high), log)


class ConfigSpace:
    """An ordered set of `Param`s built from a `name -> spec` dict (see the module docstring)."""

    def __init__(self, spec):
        if isinstance(spec, ConfigSpace):
            spec = spec.spec
        if not isinstance(spec, dict):
            raise UsageError(f"a configuration space is an object of name -> spec, got {type(spec).__name__}")
        if not spec:
            raise UsageError("the configuration space is empty; give at least one parameter, e.g. "
                             '{"lr": {"type": "loguniform", "low": 1e-4, "high": 1.0}}')
        self.spec = {name: dict(s) if isinstance(s, dict) else s for name, s in spec.items()}
        self.params = [parse_param(name, s) for name, s in spec.items()]

    @classmethod
    def from_json(cls, path):
        """Read a space from a JSON file; a missing or malformed file is one UsageError line."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as e:
            raise UsageError(f"--space {path}: cannot read ({e.strerror})") from None
        except UnicodeDecodeError:
            raise UsageError(f"--space {path}: not valid JSON (not UTF-8 text)") from None
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as e:
            raise UsageError(f"--space {path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
        try:
            return cls(spec)
        except UsageError as e:
            raise UsageError(f"--space {path}: {e}") from None

    @property
    def names(self):
        return [p.name for p in self.params]

    @property
    def dim(self):
        """Width of the unit-cube encoding."""
        return sum(p.width for p in self.params)

    def sample(self, rng):
        """One configuration dict, each parameter drawn independently."""
        return {p.name: p.sample(rng) for p in self.params}

    def to_unit(self, config):
        """(dim,) encoding of one configuration in [0, 1]^dim."""
        return np.array([u for p in self.params for u in p.to_unit(config[p.name])])

    def from_unit(self, x):
        """The configuration a unit-cube point (dim,) stands for."""
        config, i = {}, 0
        for p in self.params:
            config[p.name] = p.from_unit(x[i:i + p.width])
            i += p.width
        return config

    def distributions(self):
        """name -> Optuna distribution, for `study.ask(...)` and samplers."""
        return {p.name: p.distribution() for p in self.params}

    def __eq__(self, other):
        return isinstance(other, ConfigSpace) and self.params == other.params

    def __repr__(self):
        return f"ConfigSpace({self.spec!r})"
