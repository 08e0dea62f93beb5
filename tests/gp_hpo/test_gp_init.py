"""Where a fit starts: the periodogram's period on uneven inputs, span and spacing by hand, the
expression's values, fixes and bounds in standardised units, restarts around the start."""
import math

import numpy as np
import pytest

from gp_hpo.gp_base import standardiser
from gp_hpo.gp_init import data_scales, periodogram_peaks, start_plan
from gp_hpo.kernels import NOISE_STD, parse_kernel


def _uneven(seed=11, n=150):
    """A trend, a period-1.7 wave and a weaker period-4.3 one at sorted uniform inputs on [0, 20], plus noise."""
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(0, 20, n))
    y = 0.3 * x + np.sin(2 * np.pi * x / 1.7) + 0.6 * np.cos(2 * np.pi * x / 4.3) + 0.3 * rng.standard_normal(n)
    return x, y


def test_periodogram_recovers_the_periods_of_an_unevenly_sampled_signal():
    x, y = _uneven()
    assert np.ptp(np.diff(x)) > 0.3  # gaps from near 0 to over 0.3: far from a regular grid
    first, second = periodogram_peaks(x, y, count=2)
    assert first == pytest.approx(1.7, rel=0.01)
    assert second == pytest.approx(4.3, rel=0.02)
    # the linear trend is removed first: without it the longest periods would win
    assert periodogram_peaks(x, 0.3 * x + 0.01 * np.sin(2 * np.pi * x / 1.7)) == [pytest.approx(1.7, rel=0.01)]


def test_data_scales_by_hand():
    span, spacing = data_scales(np.array([[0.0, 5.0], [1.0, 5.0], [3.0, 5.0], [3.0, 5.0], [7.0, 5.0]]))
    # distinct values 0, 1, 3, 7: gaps 1, 2, 4, median 2; a constant column gets span 1, spacing 1/5
    np.testing.assert_allclose(span, [7.0, 1.0])
    np.testing.assert_allclose(spacing, [2.0, 0.2])


def _plan(expression, x, y, noise_std=None):
    X = x[:, None]
    x_std = standardiser(X)[1]
    y_std = float(standardiser(y[:, None])[1][0])
    return start_plan(parse_kernel(expression), X, y, x_std, y_std, noise_std), x_std[0], y_std


def test_data_based_starts_in_standardised_units():
    x, y = _uneven()
    plan, x_std, y_std = _plan("rbf + rbf * periodic", x, y)
    span, spacing = (v[0] for v in data_scales(x[:, None]))
    # layout: rbf.signal_std, rbf.lengthscale, rbf2.signal_std, rbf2.lengthscale, periodic.lengthscale,
    # periodic.period, then the log noise std
    expected = [math.log(y_std), 0.5 * math.log(span * spacing), math.log(y_std), math.log(span), 0.0,
                math.log(periodogram_peaks(x, y)[0]), math.log(0.1 * y_std)]
    shift = np.log([y_std, x_std, y_std, x_std, 1.0, x_std, y_std])
    np.testing.assert_allclose(plan.start + shift, expected, rtol=1e-12)
    assert not plan.fixed.any() and not plan.bounded.any()
    cycles = span / periodogram_peaks(x, y)[0]
    assert plan.scale[5] == pytest.approx(2 * math.pi * cycles) and np.all(plan.scale[[0, 1, 2, 3, 4, 6]] == 1.0)
    # the period's lower bound reaches down to one spacing (the kernels' default stops at 0.1 input stds)
    assert plan.low[5] == pytest.approx(math.log(spacing / x_std))


def test_values_fixes_and_bounds_of_the_expression_and_restarts_around_the_start():
    x, y = _uneven()
    plan, x_std, y_std = _plan("rbf(lengthscale=3!) * periodic(period=1.5 in [1, 2]) + white(signal_std=0.2)", x, y)
    # rbf.signal_std, rbf.lengthscale, periodic.lengthscale, periodic.period, white.signal_std, noise
    assert plan.start[1] == pytest.approx(math.log(3 / x_std)) and plan.fixed.tolist() == [
        False, True, False, False, False, True]
    assert plan.start[3] == pytest.approx(math.log(1.5 / x_std))
    assert (plan.low[3], plan.high[3]) == (pytest.approx(math.log(1 / x_std)), pytest.approx(math.log(2 / x_std)))
    assert plan.bounded.tolist() == [False, False, False, True, False, False]
    assert plan.start[4] == pytest.approx(math.log(0.2 / y_std))
    # a white term models the noise: the likelihood's noise is fixed at its floor
    assert plan.start[5] == pytest.approx(math.log(NOISE_STD.bounds[0]))
    rng = np.random.default_rng(0)
    draws = np.array([plan.restart(rng) for _ in range(200)])
    assert np.all(draws[:, plan.fixed] == plan.start[plan.fixed])
    assert np.all(draws >= plan.low - 1e-12) and np.all(draws <= plan.high + 1e-12)
    assert np.all(np.abs(draws - plan.start) <= plan.spread + 1e-12)
    # the period moves by at most a quarter of its periodogram peak's width: a factor 1 + 1/(4 cycles)
    cycles = np.ptp(x) / 1.5
    assert np.max(np.abs(draws[:, 3] - plan.start[3])) == pytest.approx(math.log1p(1 / (4 * cycles)), rel=0.05)
    # a fixed noise_std wins over the white term's floor
    assert _plan("rbf + white", x, y, noise_std=0.05)[0].start[-1] == pytest.approx(math.log(0.05 / y_std))


def test_a_start_outside_the_default_bounds_widens_them():
    x, y = _uneven()
    plan, x_std, _ = _plan("rbf(lengthscale=1e5)", x, y)
    assert plan.high[1] == pytest.approx(math.log(1e5 / x_std)) == pytest.approx(plan.start[1])
