"""Covariance functions for Gaussian processes (D2L 18.1-18.2), as parseable expressions.

    kernel = parse_kernel("rbf + periodic * rbf")
    kernel.names(d=1)   # ['rbf.signal_std', 'rbf.lengthscale', 'periodic.signal_std', 'periodic.lengthscale',
                        #  'periodic.period', 'rbf2.lengthscale']

Base kernels (name: hyperparameters besides the term's `signal_std`):

- `rbf` (squared exponential): exp(-r^2 / 2), `lengthscale`
- `matern12`, `matern32`, `matern52`: the Matern family with nu = 1/2, 3/2, 5/2, `lengthscale`
- `rq` (rational quadratic): (1 + r^2 / (2 alpha))^-alpha, `lengthscale`, `alpha`
- `periodic` (exp-sine-squared): exp(-2 sum_k sin^2(pi |x_k - x'_k| / period_k) / lengthscale_k^2),
  `lengthscale`, `period`
- `linear`: x . x' (no hyperparameter of its own)
- `white`: independent noise (scikit-learn's `WhiteKernel`): 1 where both inputs are the same
  training point, 0 between two input sets; its term's `signal_std` is the noise std
- `nn` (the book's neural-network kernel, Williams 1998):
  2/pi asin(2 x~' S x~ / sqrt((1 + 2 x~' S x~)(1 + 2 x~'' S x~'))) with x~ = (1, x) and
  S = diag(bias_std^2, weight_std^2, ...), `bias_std`, `weight_std`

with r^2 = sum_k (x_k - x'_k)^2 / lengthscale_k^2: lengthscales (and periods) are per input
dimension (ARD), a list when d > 1. An expression is a sum of products, `*` binding tighter
than `+`; each product term is multiplied by its own `signal_std^2` (GPyTorch's
`ScaleKernel`). Hyperparameters are named `<kernel>.<name>` (a repeated kernel gets a number:
`rbf2`), a term's `signal_std` under its first factor; an expression of one kernel uses the bare
names (`lengthscale`, `signal_std`). A kernel may set its hyperparameters in the data's units:
`rbf(lengthscale=50) * periodic(period=1!, lengthscale=[0.1, 10])` (a start, `!` fixed, bounds;
see `parse_kernel`); `Kernel.settings` and each `Slot.setting` hold them for `gp_hpo.gp_init`.

The functions here work on a flat vector `theta` of log-hyperparameters (the optimiser's
unconstrained-but-bounded coordinates: every hyperparameter is positive) in the units the
caller chose; `gp_hpo.gp` works in standardised units and converts to the data's units for
reporting. `matrix_and_gradients` yields dK/dtheta_i one matrix at a time, so a fit with n in
the thousands holds only a handful of n x n arrays.
"""
import re
from dataclasses import dataclass

import numpy as np

from common.errors import UsageError


@dataclass(frozen=True)
class Hyperparameter:
    """One positive hyperparameter of a base kernel.

    `unit`: "x" (a length in the inputs' units, one per input dimension), "y" (in the targets'
    units) or "1" (dimensionless). `per_dim`: one value per input dimension (always for "x").
    `default` and `bounds` are in standardised units (inputs and targets with mean 0 and std 1),
    `bounds` as (low, high), `prior` as the (low, high) range that random restarts draw from
    log-uniformly.
    """

    name: str
    unit: str
    default: float
    bounds: tuple
    prior: tuple
    dimensionless_per_dim: bool = False

    @property
    def per_dim(self):
        return self.unit == "x" or self.dimensionless_per_dim


LENGTHSCALE = Hyperparameter("lengthscale", "x", 0.5, (1e-3, 1e3), (0.1, 3.0))
SIGNAL_STD = Hyperparameter("signal_std", "y", 1.0, (1e-3, 1e2), (0.3, 3.0))
NOISE_STD = Hyperparameter("noise_std", "y", 0.1, (1e-4, 1e1), (0.01, 1.0))
# the signal_std of a term with a `white` factor is a noise std: its default and bounds are the noise's
WHITE_STD = Hyperparameter("signal_std", "y", 0.1, (1e-4, 1e1), (0.01, 1.0))


class BaseKernel:
    """A covariance function k(x, x') of unit scale; subclasses set `name` and `hyperparameters`."""

    name = ""
    hyperparameters = ()

    def matrix(self, p, pairs):
        """K (n1, n2) for the named hyperparameter values `p` (name -> array) on `pairs`."""
        raise NotImplementedError

    def diag(self, p, X):
        """k(x, x) for every row of X, (n,)."""
        return np.ones(len(X))

    def matrix_and_state(self, p, pairs):
        """(K, state): the matrix and what `gradients` can reuse (the default: nothing)."""
        return self.matrix(p, pairs), None

    def gradients(self, p, pairs, K, state=None):
        """Yield dK/dlog(h) for every hyperparameter h (one per input dimension for a per-dimension
        one) in `hyperparameters` order; K and state as `matrix_and_state` returned them."""
        raise NotImplementedError


class Pairs:
    """Pairwise differences of two input sets (n1, d) and (n2, d), computed once per dimension and kept.

    Reused across the evaluations of one fit: the differences do not depend on the
    hyperparameters.
    """

    def __init__(self, X1, X2=None):
        self.X1 = np.asarray(X1, dtype=np.float64)
        self.X2 = self.X1 if X2 is None else np.asarray(X2, dtype=np.float64)
        self.d = self.X1.shape[1]
        self.same = X2 is None
        self._diff = {}
        self._sqdiff = {}

    def diff(self, k):
        """x1_k - x2_k, (n1, n2)."""
        if k not in self._diff:
            self._diff[k] = self.X1[:, k, None] - self.X2[None, :, k]
        return self._diff[k]

    def sqdiff(self, k):
        """(x1_k - x2_k)^2, (n1, n2)."""
        if k not in self._sqdiff:
            self._sqdiff[k] = np.square(self.diff(k))
        return self._sqdiff[k]

    def scaled_sqdist(self, lengthscale):
        """r^2 = sum_k (x1_k - x2_k)^2 / lengthscale_k^2, (n1, n2)."""
        r2 = self.sqdiff(0) * (1.0 / lengthscale[0] ** 2)
        for k in range(1, self.d):
            r2 += self.sqdiff(k) * (1.0 / lengthscale[k] ** 2)
        return r2


class Stationary(BaseKernel):
    """k = f(r^2) with r^2 the ARD-scaled squared distance; subclasses give f and r^2 f'(r^2)."""

    hyperparameters = (LENGTHSCALE,)

    def profile(self, r2, p):
        """(f(r^2), -2 f'(r^2)): the kernel and the factor that turns d r^2 / dlog l into dK / dlog l."""
        raise NotImplementedError

    def matrix(self, p, pairs):
        return self.profile(pairs.scaled_sqdist(p["lengthscale"]), p)[0]

    def matrix_and_state(self, p, pairs):
        r2 = pairs.scaled_sqdist(p["lengthscale"])
        K, slope = self.profile(r2, p)
        return K, (r2, slope)

    def gradients(self, p, pairs, K, state=None):
        ls = p["lengthscale"]
        r2, slope = state if state is not None else self.matrix_and_state(p, pairs)[1]
        for k in range(pairs.d):
            # d r^2 / dlog l_k = -2 (x_k - x'_k)^2 / l_k^2
            yield slope * pairs.sqdiff(k) * (1.0 / ls[k] ** 2)
        yield from self.extra_gradients(r2, p, K)

    def extra_gradients(self, r2, p, K):
        return iter(())


class RBF(Stationary):
    name = "rbf"

    def profile(self, r2, p):
        K = np.exp(r2 * -0.5)
        return K, K


class Matern(Stationary):
    def __init__(self, nu):
        self.nu = nu
        self.name = {0.5: "matern12", 1.5: "matern32", 2.5: "matern52"}[nu]

    def profile(self, r2, p):
        r = np.sqrt(r2)
        if self.nu == 0.5:
            K = np.exp(-r)
            with np.errstate(divide="ignore", invalid="ignore"):
                slope = np.where(r > 0, K / r, 0.0)
            return K, slope
        if self.nu == 1.5:
            e = np.exp(-np.sqrt(3.0) * r)
            return (1.0 + np.sqrt(3.0) * r) * e, 3.0 * e
        e = np.exp(-np.sqrt(5.0) * r)
        poly = 1.0 + np.sqrt(5.0) * r
        return (poly + (5.0 / 3.0) * r2) * e, (5.0 / 3.0) * poly * e


class RationalQuadratic(Stationary):
    name = "rq"
    hyperparameters = (LENGTHSCALE, Hyperparameter("alpha", "1", 1.0, (1e-3, 1e3), (0.1, 10.0)))

    def profile(self, r2, p):
        alpha = p["alpha"][0]
        base = 1.0 + r2 / (2.0 * alpha)
        K = base ** -alpha
        return K, K / base

    def extra_gradients(self, r2, p, K):
        alpha = p["alpha"][0]
        u = r2 / (2.0 * alpha)
        yield K * alpha * (u / (1.0 + u) - np.log1p(u))


class Periodic(BaseKernel):
    name = "periodic"
    # the lengthscale here divides a sine, so it has no unit (one per dimension all the same)
    hyperparameters = (Hyperparameter("lengthscale", "1", 1.0, (1e-3, 1e3), (0.3, 3.0), dimensionless_per_dim=True),
                       Hyperparameter("period", "x", 1.0, (1e-1, 1e2), (0.2, 3.0)))

    def _angles(self, p, pairs):
        return [np.pi * pairs.diff(k) / p["period"][k] for k in range(pairs.d)]

    def matrix(self, p, pairs):
        ls = p["lengthscale"]
        exponent = sum(np.sin(a) ** 2 * (-2.0 / ls[k] ** 2) for k, a in enumerate(self._angles(p, pairs)))
        return np.exp(exponent)

    def gradients(self, p, pairs, K, state=None):
        ls = p["lengthscale"]
        angles = self._angles(p, pairs)
        for k, a in enumerate(angles):
            yield K * np.sin(a) ** 2 * (4.0 / ls[k] ** 2)
        for k, a in enumerate(angles):
            yield K * a * np.sin(2.0 * a) * (2.0 / ls[k] ** 2)


class Linear(BaseKernel):
    name = "linear"
    hyperparameters = ()

    def matrix(self, p, pairs):
        return pairs.X1 @ pairs.X2.T

    def diag(self, p, X):
        return np.einsum("ij,ij->i", X, X)

    def gradients(self, p, pairs, K, state=None):
        return iter(())


class NeuralNetwork(BaseKernel):
    """The arcsine kernel of an infinitely wide one-hidden-layer erf network (D2L 18.2)."""

    name = "nn"
    hyperparameters = (Hyperparameter("bias_std", "1", 1.0, (1e-3, 1e3), (0.3, 3.0)),
                       Hyperparameter("weight_std", "1", 1.0, (1e-3, 1e3), (0.3, 3.0)))

    @staticmethod
    def _parts(p, pairs):
        b2, w2 = p["bias_std"][0] ** 2, p["weight_std"][0] ** 2
        dot = pairs.X1 @ pairs.X2.T
        sq1, sq2 = np.einsum("ij,ij->i", pairs.X1, pairs.X1), np.einsum("ij,ij->i", pairs.X2, pairs.X2)
        b1, b2_ = 1.0 + 2.0 * (b2 + w2 * sq1), 1.0 + 2.0 * (b2 + w2 * sq2)
        norm = np.sqrt(np.outer(b1, b2_))
        z = np.clip(2.0 * (b2 + w2 * dot) / norm, -1.0, 1.0)
        return b2, w2, dot, sq1, sq2, b1, b2_, norm, z

    def matrix(self, p, pairs):
        return (2.0 / np.pi) * np.arcsin(self._parts(p, pairs)[-1])

    def diag(self, p, X):
        b2, w2 = p["bias_std"][0] ** 2, p["weight_std"][0] ** 2
        a = 2.0 * (b2 + w2 * np.einsum("ij,ij->i", X, X))
        return (2.0 / np.pi) * np.arcsin(a / (1.0 + a))

    def gradients(self, p, pairs, K, state=None):
        b2, w2, dot, sq1, sq2, b1, b2_, norm, z = self._parts(p, pairs)
        dk_dz = (2.0 / np.pi) / np.sqrt(np.maximum(1.0 - z ** 2, 1e-300))
        for da, db1, db2 in ((4.0 * b2, np.full_like(sq1, 4.0 * b2), np.full_like(sq2, 4.0 * b2)),
                             (4.0 * w2 * dot, 4.0 * w2 * sq1, 4.0 * w2 * sq2)):
            dz = da / norm - 0.5 * z * ((db1 / b1)[:, None] + (db2 / b2_)[None, :])
            yield dk_dz * dz


class White(BaseKernel):
    """Independent noise as a kernel (scikit-learn's `WhiteKernel`): the identity on one input set,
    zero between two sets (even where points coincide), so it adds to k(x, x) and to the training
    covariance but never correlates a new point with the data."""

    name = "white"
    hyperparameters = ()

    def matrix(self, p, pairs):
        n1, n2 = len(pairs.X1), len(pairs.X2)
        return np.eye(n1) if pairs.same else np.zeros((n1, n2))

    def gradients(self, p, pairs, K, state=None):
        return iter(())


BASE_KERNELS = {
    "rbf": RBF, "se": RBF,
    "matern12": lambda: Matern(0.5), "exponential": lambda: Matern(0.5),
    "matern32": lambda: Matern(1.5), "matern52": lambda: Matern(2.5),
    "rq": RationalQuadratic, "rationalquadratic": RationalQuadratic,
    "periodic": Periodic, "expsinesquared": Periodic,
    "linear": Linear,
    "nn": NeuralNetwork, "neuralnetwork": NeuralNetwork,
    "white": White,
}


@dataclass(frozen=True)
class Setting:
    """What an expression says about one hyperparameter, in the data's units: a starting `value`
    (None: chosen from the data), `fixed` (not optimised), `bounds` (low, high) or None."""

    value: float | None = None
    fixed: bool = False
    bounds: tuple | None = None


@dataclass(frozen=True)
class Slot:
    """One entry of the flat hyperparameter vector: its name, hyperparameter, input dimension (or
    None), the index of its product term, its base kernel (None for the term's signal_std) and what
    the expression set for it."""

    name: str
    spec: Hyperparameter
    dim: int | None
    term: int = 0
    base: object = None
    setting: Setting = Setting()


class Kernel:
    """A sum of products of base kernels, each product scaled by its own signal_std^2.

    `terms`: list of products, each a list of (label, BaseKernel). Build with `parse_kernel`.
    """

    def __init__(self, expression, terms, settings=None):
        self.expression = expression
        self.terms = terms
        self._bare = sum(len(t) for t in terms) == 1
        self.settings = dict(settings or {})  # hyperparameter name -> Setting

    def __repr__(self):
        return f"Kernel({self.expression!r})"

    def _full(self, label, name):
        return name if self._bare else f"{label}.{name}"

    def layout(self, d):
        """The flat hyperparameter vector for d input dimensions: a list of Slot."""
        slots = []
        for t, term in enumerate(self.terms):
            scale = WHITE_STD if any(isinstance(base, White) for _, base in term) else SIGNAL_STD
            name = self.signal_name(t)
            slots.append(Slot(name, scale, None, t, None, self.settings.get(name, Setting())))
            for label, base in term:
                for h in base.hyperparameters:
                    dims = range(d) if h.per_dim else [None]
                    name = self._full(label, h.name)
                    slots.extend(Slot(name, h, k, t, base, self.settings.get(name, Setting())) for k in dims)
        return slots

    def signal_name(self, t):
        """The name of term t's signal_std (under its first factor's label)."""
        return self._full(self.terms[t][0][0], "signal_std")

    @property
    def has_white(self):
        """True when a term holds a `white` factor (then that term, not the likelihood, models the noise)."""
        return any(isinstance(base, White) for term in self.terms for _, base in term)

    def names(self, d):
        """Hyperparameter names (each once, a per-dimension one standing for its d values)."""
        return list(dict.fromkeys(s.name for s in self.layout(d)))

    def default_theta(self, d):
        """log of every hyperparameter's default (standardised units), (p,)."""
        return np.log([s.spec.default for s in self.layout(d)])

    def bounds(self, d):
        """(low, high) of every log-hyperparameter, for L-BFGS-B."""
        return [tuple(np.log(s.spec.bounds)) for s in self.layout(d)]

    def random_theta(self, d, rng):
        """A random start: every hyperparameter log-uniform in its `prior` range."""
        return np.array([rng.uniform(*np.log(s.spec.prior)) for s in self.layout(d)])

    def unpack(self, theta, d):
        """Split theta into, per term, (signal_std, [name -> array of values] per factor)."""
        theta = np.exp(np.asarray(theta, dtype=np.float64))
        i, out = 0, []
        for term in self.terms:
            scale = theta[i]
            i += 1
            factors = []
            for _, base in term:
                p = {}
                for h in base.hyperparameters:
                    size = d if h.per_dim else 1
                    p[h.name] = theta[i:i + size]
                    i += size
                factors.append(p)
            out.append((scale, factors))
        return out

    def to_dict(self, theta, d):
        """{name: value} with floats, and lists for per-dimension hyperparameters when d > 1."""
        values = {}
        for s, v in zip(self.layout(d), np.exp(theta)):
            if s.dim is None or d == 1:
                values[s.name] = float(v)
            else:
                values.setdefault(s.name, []).append(float(v))
        return values

    def from_dict(self, values, d):
        """theta from {name: value} (as `to_dict` writes it); UsageError naming a missing or bad entry."""
        theta = []
        for s in self.layout(d):
            if s.name not in values:
                raise UsageError(f"hyperparameter {s.name!r} missing for kernel {self.expression!r} "
                                 f"(expected {', '.join(self.names(d))})")
            v = np.atleast_1d(np.asarray(values[s.name], dtype=np.float64))
            v = v[s.dim] if s.dim is not None and len(v) == d else v[0]
            if not v > 0:
                raise UsageError(f"hyperparameter {s.name!r} must be positive, got {v}")
            theta.append(np.log(v))
        return np.array(theta)

    def _terms(self, theta, d):
        """Per term: (signal_std, [(BaseKernel, {name: values}) per factor])."""
        return [(scale, [(base, p) for (_, base), p in zip(term, ps)])
                for (scale, ps), term in zip(self.unpack(theta, d), self.terms)]

    def matrix(self, theta, X1, X2=None, pairs=None):
        """K(X1, X2) (n1, n2) for log-hyperparameters theta; X2=None means X1."""
        pairs = pairs or Pairs(X1, X2)
        K = None
        for scale, factors in self._terms(theta, pairs.d):
            term = scale ** 2
            for base, p in factors:
                term = term * base.matrix(p, pairs)
            K = term if K is None else K + term
        return K

    def diag(self, theta, X):
        """k(x, x) for every row of X, (n,)."""
        X = np.asarray(X, dtype=np.float64)
        total = np.zeros(len(X))
        for scale, factors in self._terms(theta, X.shape[1]):
            part = np.full(len(X), scale ** 2)
            for base, p in factors:
                part = part * base.diag(p, X)
            total += part
        return total

    def matrix_and_gradients(self, theta, X, pairs=None):
        """(K, gradients): K(X, X) (n, n) and an iterator of dK/dtheta_i in layout order.

        Each gradient matrix is made when the iterator reaches it, so a caller that consumes
        them one by one holds only the factor matrices and one gradient at a time.
        """
        pairs = pairs or Pairs(X)
        terms = self._terms(theta, pairs.d)
        computed = [[base.matrix_and_state(p, pairs) for base, p in factors] for _, factors in terms]
        mats = [[m for m, _ in c] for c in computed]
        term_K = []
        for (scale, _), ms in zip(terms, mats):
            prod = scale ** 2 * ms[0]
            for m in ms[1:]:
                prod *= m
            term_K.append(prod)
        K = term_K[0].copy()
        for t in term_K[1:]:
            K += t

        def gradients():
            for (scale, factors), ms, states, tk in zip(terms, mats, computed, term_K):
                yield 2.0 * tk
                for j, (base, p) in enumerate(factors):
                    others = scale ** 2
                    for i, m in enumerate(ms):
                        if i != j:
                            others = others * m
                    for g in base.gradients(p, pairs, ms[j], states[j][1]):
                        yield others * g

        return K, gradients()


_TOKEN = re.compile(r"\s*(?:([A-Za-z_][A-Za-z0-9_]*)|(\+|\*)|(\S))")
_ARGUMENT = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$", re.S)
_BOUNDS = re.compile(r"^(?:(.*?)\s+in\s*)?\[(.*)\]$", re.S)
KNOWN = "rbf, matern12, matern32, matern52, rq, periodic, linear, nn, white"


def _positive(text, what, where):
    """float(text) when it is a finite positive number; UsageError `where: what must be ...` otherwise."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (np.isfinite(value) and value > 0):
        raise UsageError(f"{where}: {what} must be a positive number, got {text.strip()!r}")
    return value


def _split_arguments(text):
    """The comma-separated arguments of a call, commas inside [...] kept."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return parts + [current]


def _setting(name, spec, where):
    """A Setting from `value`, `value!` (fixed), `[low, high]` or `value in [low, high]`."""
    spec = spec.strip()
    if not spec:
        raise UsageError(f"{where}: {name} has no value (write {name}=VALUE, {name}=VALUE! to fix it, "
                         f"or {name}=[LOW, HIGH])")
    if spec.endswith("!"):
        return Setting(_positive(spec[:-1], name, where), fixed=True)
    bounds = _BOUNDS.match(spec)
    if bounds is None:
        return Setting(_positive(spec, name, where))
    limits = bounds.group(2).split(",")
    if len(limits) != 2:
        raise UsageError(f"{where}: the bounds of {name} must be [LOW, HIGH], got [{bounds.group(2).strip()}]")
    low, high = (_positive(v, f"a bound of {name}", where) for v in limits)
    if not low < high:
        raise UsageError(f"{where}: the bounds of {name} must have LOW < HIGH, got [{low:g}, {high:g}]")
    value = None if bounds.group(1) is None else _positive(bounds.group(1), name, where)
    if value is not None and not low <= value <= high:
        raise UsageError(f"{where}: {name}={value:g} lies outside its bounds [{low:g}, {high:g}]")
    return Setting(value, bounds=(low, high))


def _arguments(base, text, where):
    """{hyperparameter name: Setting} from the text between a kernel's parentheses."""
    allowed = ["signal_std"] + [h.name for h in base.hyperparameters]
    settings = {}
    if not text.strip():
        return settings
    for argument in _split_arguments(text):
        m = _ARGUMENT.match(argument)
        if m is None:
            raise UsageError(f"{where}: expected NAME=VALUE, got {argument.strip()!r}")
        name = m.group(1).lower()
        if name not in allowed:
            raise UsageError(f"{where}: unknown parameter {m.group(1)!r} ({base.name} has {', '.join(allowed)})")
        if name in settings:
            raise UsageError(f"{where}: {name} set twice")
        settings[name] = _setting(name, m.group(2), where)
    return settings


def parse_kernel(expression):
    """A Kernel from an expression such as "matern52", "rbf + periodic * rbf" or
    "rbf(lengthscale=50) + rbf(lengthscale=100) * periodic(period=1!) + rq(alpha=[0.1, 10]) + white".

    Grammar: a sum of products of base-kernel names (see the module docstring), `*` before `+`,
    names case-insensitive. A kernel may be followed by `(name=spec, ...)` setting its own
    hyperparameters or its term's `signal_std`, in the data's units: `value` (where the
    optimiser starts), `value!` (fixed: never optimised), `[low, high]` (bounds; the start is
    chosen from the data inside them) or `value in [low, high]`. Raises UsageError with one line
    naming the problem and the term.
    """
    text = str(expression)
    terms, current, expect_name = [], [], True
    counts, settings, signal_set = {}, {}, None
    pos = 0
    while True:
        m = _TOKEN.match(text, pos)
        if m is None:
            break
        pos = m.end()
        name, op, other = m.groups()
        if other is not None:
            hint = " (parentheses are not supported: write a sum of products)" if other in "()" else ""
            raise UsageError(f"kernel expression {text!r}: unexpected {other!r} at column {m.start(3) + 1}{hint}")
        if expect_name:
            if name is None:
                raise UsageError(f"kernel expression {text!r}: expected a kernel name at column {m.start(2) + 1}, "
                                 f"got {op!r}")
            key = name.lower()
            if key not in BASE_KERNELS:
                raise UsageError(f"kernel expression {text!r}: unknown kernel {name!r} (known: {KNOWN})")
            base = BASE_KERNELS[key]()
            counts[base.name] = counts.get(base.name, 0) + 1
            label = base.name if counts[base.name] == 1 else f"{base.name}{counts[base.name]}"
            arguments = {}
            after = len(text[pos:]) - len(text[pos:].lstrip())
            if text[pos + after:pos + after + 1] == "(":
                close = text.find(")", pos + after)
                if close < 0:
                    raise UsageError(f"kernel expression {text!r}: {name}( at column {m.start(1) + 1} is not closed")
                where = f"kernel expression {text!r}: in {text[m.start(1):close + 1]}"
                arguments = _arguments(base, text[pos + after + 1:close], where)
                if "signal_std" in arguments:
                    if signal_set is not None:
                        raise UsageError(f"{where}: signal_std set twice in one product term "
                                         f"(already in {signal_set})")
                    signal_set = text[m.start(1):close + 1]
                pos = close + 1
            current.append((label, base, arguments))
            expect_name = False
        else:
            if op is None:
                raise UsageError(f"kernel expression {text!r}: expected + or * before {name!r}")
            if op == "+":
                terms.append(current)
                current, signal_set = [], None
            expect_name = True
    if expect_name:
        raise UsageError(f"kernel expression {text!r}: " + ("empty" if not text.strip() else "ends with an operator"))
    terms.append(current)
    kernel = Kernel(" ".join(text.split()), [[(label, base) for label, base, _ in term] for term in terms])
    for t, term in enumerate(terms):
        for label, base, arguments in term:
            for name, setting in arguments.items():
                full = kernel.signal_name(t) if name == "signal_std" else kernel._full(label, name)
                settings[full] = setting
    kernel.settings = settings
    return kernel


def sample_prior(kernel, X, theta=None, n_samples=1, seed=0, hyperparameters=None):
    """Draws f ~ GP(0, k) at the rows of X (m, d): (n_samples, m).

    Hyperparameters as log-values `theta` or as a {name: value} dict (raw units: the kernel
    is applied to X as given); the kernel's defaults when neither is given. A jitter of
    1e-10 (raised until the Cholesky succeeds) keeps smooth kernels factorisable.
    """
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    d = X.shape[1]
    if hyperparameters is not None:
        theta = kernel.from_dict(hyperparameters, d)
    elif theta is None:
        theta = kernel.default_theta(d)
    L = jittered_cholesky(kernel.matrix(theta, X))[0]
    rng = np.random.default_rng(seed)
    return (L @ rng.standard_normal((len(X), n_samples))).T


def symmetrize_from_lower(A, block=256):
    """Copy the lower triangle of the square array A onto its upper triangle, in place, by blocks
    (no n x n temporaries, few Python steps); returns A."""
    n = len(A)
    for j in range(0, n, block):
        end = min(j + block, n)
        A[:j, j:end] = A[j:end, :j].T
        diagonal = A[j:end, j:end]
        diagonal[...] = np.tril(diagonal) + np.tril(diagonal, -1).T
    return A


def zero_upper(A, block=256):
    """Set the strict upper triangle of the square array A to 0, in place, by blocks; returns A."""
    n = len(A)
    for j in range(0, n, block):
        end = min(j + block, n)
        A[:j, j:end] = 0.0
        A[j:end, j:end] = np.tril(A[j:end, j:end])
    return A


def jittered_cholesky(K, start=1e-10, max_jitter=1e-2, overwrite=False, clean=True):
    """Lower Cholesky factor L of the symmetric K (n, n), adding jitter * mean(diag K) to the
    diagonal (none first, then `start`, times 10 up to `max_jitter`) until it factorises;
    returns (L, jitter used).

    `overwrite=True` reuses K's memory (K is then gone); `clean=False` leaves the strict upper
    triangle of L holding K's (for LAPACK routines that read only the lower one). Raises
    numpy.linalg.LinAlgError when even `max_jitter` does not make K positive definite.
    """
    from scipy.linalg import lapack

    work = K if overwrite and K.flags.c_contiguous else np.array(K, order="C")
    diagonal = np.diag(work).copy()
    scale = float(np.mean(diagonal)) or 1.0
    jitter = 0.0
    while True:
        # work.T is Fortran-ordered: its upper Cholesky factor is L^T, written over work's lower
        # triangle in place; the upper triangle keeps K for a retry.
        _, info = lapack.dpotrf(work.T, lower=0, overwrite_a=1, clean=0)
        if info == 0:
            return (zero_upper(work) if clean else work), jitter
        if info < 0:
            raise ValueError(f"dpotrf: illegal argument {-info}")
        jitter = start if jitter == 0.0 else jitter * 10.0
        if jitter > max_jitter:
            raise np.linalg.LinAlgError(f"matrix not positive definite even with jitter {max_jitter:g}")
        symmetrize_from_lower(work.T)  # K back from its untouched upper triangle
        work[np.diag_indices_from(work)] = diagonal + jitter * scale
