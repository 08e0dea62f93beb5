"""Where a GP fit starts: data-based starting values and bounds, the expression's settings, restarts.

    plan = start_plan(kernel, X, y, noise_std=None)   # X (n, d), y (n,), data units
    plan.start            # log-hyperparameters to start from, standardised units, (p + 1,): kernel slots, log noise std
    plan.low, plan.high   # bounds of each (L-BFGS-B's box)
    plan.fixed            # (p + 1,) bool: never optimised
    plan.restart(rng)     # another start: each free entry log-uniform within `spread` of its start, in bounds

Every vector is in `kernel.layout(d)` order with the log noise std last, standardised (inputs per
column and targets to mean 0, std 1, as `gp_hpo.gp_base.StandardisedGP` fits them). The rules, in
the data's units (what the expression says wins; see `gp_hpo.kernels.parse_kernel`):

- `period` of a `periodic` term (one input): the strongest peaks of the Lomb-Scargle periodogram of
  y with its linear trend removed (`scipy.signal.lombscargle`, which handles uneven inputs), over
  periods from 2 spacings to half the span; a second periodic term takes the second peak. Bounds
  from one spacing to 100 input stds. Restarts stay within a quarter of the peak's width (a factor
  1 + 1/(4 cycles), cycles = span / period): the likelihood in the period has a local maximum at
  every alias and harmonic, so a restart far from the peak is wasted. The optimiser sees the log
  period multiplied by 2 pi cycles (`scale`): an error of d in the log period shifts the phase at
  the end of the data by 2 pi cycles d, so the likelihood is that much more curved in it than in
  the other log-hyperparameters, and L-BFGS-B, unscaled, stalls on the ridge it makes.
- `lengthscale` (and a periodic term's lengthscale factor in a product): the geometric mean of the
  input's spacing (median gap between sorted distinct values) and span (max - min); a stationary
  kernel multiplied by a periodic one starts at the span instead, so the periodic pattern starts
  nearly fixed and the optimiser lets it decay. Restarts draw within a factor of 10.
- `signal_std`: the targets' std (a `white` term's: 0.1 of it); the likelihood's `noise_std`: 0.1 of
  the targets' std, fixed at its floor (1e-4 of it) when a `white` term models the noise instead.
  Restarts draw within a factor of 3 (noise: 10).
- dimensionless ones (`alpha`, a periodic lengthscale, `nn`'s): the kernel's default, factor 3.

Default bounds are those of `gp_hpo.kernels` (standardised), widened to hold a given start.
"""
import math
from dataclasses import dataclass

import numpy as np

from gp_hpo.kernels import NOISE_STD, Periodic, Stationary

LENGTH_SPREAD, SCALE_SPREAD, NOISE_SPREAD = 10.0, 3.0, 10.0


def data_scales(X):
    """(span, spacing) per input column, (d,) each: max - min, and the median gap between sorted
    distinct values (span / n where a column is constant or has one value)."""
    X = np.asarray(X, dtype=np.float64)
    span = X.max(axis=0) - X.min(axis=0)
    spacing = np.empty(X.shape[1])
    for k in range(X.shape[1]):
        gaps = np.diff(np.unique(X[:, k]))
        spacing[k] = np.median(gaps) if len(gaps) else 0.0
    span = np.where(span > 0, span, 1.0)
    return span, np.where(spacing > 0, spacing, span / max(len(X), 1))


def periodogram_peaks(x, y, count=1, oversample=10, max_frequencies=20000):
    """The `count` periods (in x's units, strongest first) of the highest local maxima of the
    Lomb-Scargle periodogram of y (n,) at inputs x (n,), any spacing, with y's least-squares line
    removed. Periods from twice the median spacing to half the span, on a frequency grid
    `oversample` times finer than 1 / span (at most `max_frequencies` points). Fewer when the
    periodogram has fewer peaks."""
    from scipy.signal import lombscargle

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    span, spacing = (v[0] for v in data_scales(x[:, None]))
    residual = y - np.polyval(np.polyfit(x - x.mean(), y, 1), x - x.mean()) if len(x) > 2 else y - y.mean()
    low, high = 2.0 / span, 1.0 / (2.0 * spacing)  # cycles per unit of x
    if not high > low or not np.any(residual):
        return []
    steps = int(min(max_frequencies, max(16, oversample * span * (high - low))))
    frequency = np.linspace(low, high, steps)
    power = lombscargle(x, residual, 2.0 * np.pi * frequency)
    inner = np.flatnonzero((power[1:-1] > power[:-2]) & (power[1:-1] >= power[2:])) + 1
    peaks = inner[np.argsort(power[inner])[::-1]][:count]
    return [float(1.0 / frequency[i]) for i in peaks]


@dataclass
class StartPlan:
    """Start, bounds, fixed mask and restart spread of every log-hyperparameter (see the module docstring)."""

    start: np.ndarray
    low: np.ndarray
    high: np.ndarray
    fixed: np.ndarray
    spread: np.ndarray     # log of the factor a restart may move a free entry by
    bounded: np.ndarray    # bool: bounds the expression gave (the GPyTorch backend enforces only these)
    scale: np.ndarray      # the optimiser works on scale * entry (a diagonal preconditioner)

    def restart(self, rng):
        """A random start: every free entry log-uniform in [start - spread, start + spread] within its bounds."""
        lo = np.maximum(self.start - self.spread, self.low)
        hi = np.minimum(self.start + self.spread, self.high)
        draw = rng.uniform(lo, hi)
        return np.where(self.fixed, self.start, draw)

    @property
    def bounds(self):
        """[(low, high)] of the free entries, for L-BFGS-B."""
        return list(zip(self.low[~self.fixed], self.high[~self.fixed]))


def _data_value(slot, span, spacing, periods, periodic_terms, y_std, x_std):
    """(start in data units, log spread) of a slot the expression left open (a period's spread is
    set from its start by `start_plan`)."""
    spec = slot.spec
    if spec.unit == "y":
        return spec.default * y_std, math.log(SCALE_SPREAD)
    if spec.unit == "x":
        k = slot.dim or 0
        if spec.name == "period":
            return (periods.pop(0) if periods else spec.default * x_std[k]), 0.0
        if isinstance(slot.base, Stationary) and slot.term in periodic_terms:
            return span[k], math.log(LENGTH_SPREAD)
        return math.sqrt(span[k] * spacing[k]), math.log(LENGTH_SPREAD)
    return spec.default, math.log(SCALE_SPREAD)


def start_plan(kernel, X, y, x_std, y_std, noise_std=None):
    """The StartPlan of `kernel` on data X (n, d), y (n,) whose columns have stds x_std (d,) and
    y_std; `noise_std` fixes the likelihood noise (data units), None fits it (or fixes it at its
    floor when the kernel has a `white` term)."""
    X = np.asarray(X, dtype=np.float64)
    d = X.shape[1]
    span, spacing = data_scales(X)
    layout = kernel.layout(d)
    periodic_terms = {s.term for s in layout if isinstance(s.base, Periodic)}
    n_periods = sum(1 for s in layout if s.spec.name == "period" and s.setting.value is None)
    periods = periodogram_peaks(X[:, 0], y, n_periods) if d == 1 and n_periods else []
    start, low, high, fixed, spread, bounded, scale = [], [], [], [], [], [], []
    for s in layout:
        shift = math.log(x_std[s.dim or 0]) if s.spec.unit == "x" else math.log(y_std) if s.spec.unit == "y" else 0.0
        value, log_spread = _data_value(s, span, spacing, periods, periodic_terms, y_std, x_std)
        lo, hi = np.log(s.spec.bounds)
        if s.spec.name == "period":
            lo = min(lo, math.log(spacing[s.dim or 0]) - shift)
        if s.setting.bounds is not None:
            lo, hi = (math.log(b) - shift for b in s.setting.bounds)
        if s.setting.value is not None:
            value = s.setting.value
        theta = math.log(value) - shift
        if s.setting.bounds is None:
            lo, hi = min(lo, theta), max(hi, theta)
        start.append(min(max(theta, lo), hi))
        low.append(lo)
        high.append(hi)
        fixed.append(s.setting.fixed)
        bounded.append(s.setting.bounds is not None)
        if s.spec.name == "period":
            cycles = max(1.0, span[s.dim or 0] / math.exp(start[-1] + shift))
            log_spread = math.log1p(1.0 / (4.0 * cycles))
            scale.append(2.0 * math.pi * cycles)
        else:
            scale.append(1.0)
        spread.append(log_spread)
    lo, hi = np.log(NOISE_STD.bounds)
    if noise_std is not None:
        noise, fix = math.log(noise_std / y_std), True
    elif kernel.has_white:
        noise, fix = lo, True
    else:
        noise, fix = math.log(NOISE_STD.default), False
    start.append(noise)
    low.append(min(lo, noise))
    high.append(max(hi, noise))
    fixed.append(fix)
    spread.append(math.log(NOISE_SPREAD))
    bounded.append(False)
    scale.append(1.0)
    return StartPlan(*(np.array(v, dtype=float) for v in (start, low, high)), np.array(fixed, dtype=bool),
                     np.array(spread), np.array(bounded, dtype=bool), np.array(scale))
