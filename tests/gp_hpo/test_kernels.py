"""Kernels: expressions, hyperparameter names, values against scikit-learn's kernels and the
closed forms, analytic gradients against finite differences, prior samples' covariance."""
import re

import numpy as np
import pytest
from sklearn.gaussian_process import kernels as sk

from common.errors import UsageError
from gp_hpo.kernels import Pairs, Setting, jittered_cholesky, parse_kernel, sample_prior

EXPRESSIONS = ["rbf", "matern12", "matern32", "matern52", "rq", "periodic", "linear", "nn",
               "rbf + periodic * rbf", "matern52 * linear + rq", "rq * periodic + white"]


def test_names_of_a_single_kernel_are_bare():
    assert parse_kernel("matern52").names(1) == ["signal_std", "lengthscale"]
    assert parse_kernel("RQ").names(3) == ["signal_std", "lengthscale", "alpha"]
    assert len(parse_kernel("periodic").layout(3)) == 1 + 3 + 3  # ARD lengthscale and period


def test_names_of_an_expression_are_prefixed_and_repeats_numbered():
    kernel = parse_kernel("rbf + periodic*rbf")
    assert kernel.names(1) == ["rbf.signal_std", "rbf.lengthscale", "periodic.signal_std",
                               "periodic.lengthscale", "periodic.period", "rbf2.lengthscale"]
    assert kernel.expression == "rbf + periodic*rbf"


def test_an_expression_sets_starts_fixes_and_bounds_in_data_units():
    kernel = parse_kernel("rbf(lengthscale=50) + RBF(signal_std=2.5) * periodic(period=1!, lengthscale=0.7 in [0.1, 10])"
                          " + rq(alpha=[0.01, 100]) + white(signal_std=1e-1)")
    settings = {s.name: s.setting for s in kernel.layout(1)}
    assert settings == {
        "rbf.signal_std": Setting(), "rbf.lengthscale": Setting(50.0),
        "rbf2.signal_std": Setting(2.5), "rbf2.lengthscale": Setting(),
        "periodic.lengthscale": Setting(0.7, bounds=(0.1, 10.0)), "periodic.period": Setting(1.0, fixed=True),
        "rq.signal_std": Setting(), "rq.lengthscale": Setting(), "rq.alpha": Setting(None, bounds=(0.01, 100.0)),
        "white.signal_std": Setting(0.1)}
    assert kernel.has_white and not parse_kernel("rbf + periodic").has_white
    # a per-dimension setting applies to every input dimension
    assert [s.setting.value for s in parse_kernel("rbf(lengthscale=3)").layout(2)] == [None, 3.0, 3.0]


@pytest.mark.parametrize("expression, message", [
    ("rbf(period=1)", "in rbf(period=1): unknown parameter 'period' (rbf has signal_std, lengthscale)"),
    ("rbf + periodic(period=-1)", "in periodic(period=-1): period must be a positive number, got '-1'"),
    ("rq(alpha=0)", "in rq(alpha=0): alpha must be a positive number, got '0'"),
    ("rq(alpha=abc)", "in rq(alpha=abc): alpha must be a positive number, got 'abc'"),
    ("rbf(lengthscale=1, lengthscale=2)", "in rbf(lengthscale=1, lengthscale=2): lengthscale set twice"),
    ("rbf(signal_std=1) * periodic(signal_std=2)",
     "in periodic(signal_std=2): signal_std set twice in one product term (already in rbf(signal_std=1))"),
    ("rbf(lengthscale=[3, 2])", "in rbf(lengthscale=[3, 2]): the bounds of lengthscale must have LOW < HIGH"),
    ("rbf(lengthscale=5 in [1, 2])", "in rbf(lengthscale=5 in [1, 2]): lengthscale=5 lies outside its bounds [1, 2]"),
    ("rbf(lengthscale=[1, 2, 3])", "the bounds of lengthscale must be [LOW, HIGH], got [1, 2, 3]"),
    ("rbf(lengthscale)", "in rbf(lengthscale): expected NAME=VALUE, got 'lengthscale'"),
    ("white(lengthscale=1)", "in white(lengthscale=1): unknown parameter 'lengthscale' (white has signal_std)"),
    ("rbf + rq(alpha=1", "rq( at column 7 is not closed"),
])
def test_bad_settings_give_one_line_naming_the_term(expression, message):
    with pytest.raises(UsageError, match=re.escape(message)) as info:
        parse_kernel(expression)
    assert "\n" not in str(info.value) and str(info.value).startswith(f"kernel expression {expression!r}")


def test_white_equals_scikit_learns_white_kernel(points):
    X1, X2 = points
    values = {"rbf.signal_std": 1.3, "rbf.lengthscale": [0.7, 2.0], "white.signal_std": 0.4}
    reference = 1.3 ** 2 * sk.RBF([0.7, 2.0]) + sk.WhiteKernel(0.4 ** 2)
    np.testing.assert_allclose(_matrix("rbf + white", values, X1), reference(X1), rtol=1e-12, atol=1e-15)
    # between two input sets white noise adds nothing, even for coinciding points (scikit-learn's rule)
    np.testing.assert_allclose(_matrix("rbf + white", values, X1, X2), reference(X1, X2), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(_matrix("white", {"signal_std": 0.4}, X1, X1.copy()), 0.0)
    kernel = parse_kernel("rbf + white")
    np.testing.assert_allclose(kernel.diag(kernel.from_dict(values, 2), X1), reference.diag(X1), rtol=1e-12)
    assert kernel.names(2) == ["rbf.signal_std", "rbf.lengthscale", "white.signal_std"]


@pytest.mark.parametrize("expression, message", [
    ("", "empty"),
    ("rbf +", "ends with an operator"),
    ("rbf + * periodic", "expected a kernel name at column 7"),
    ("rbf periodic", "expected + or * before 'periodic'"),
    ("rbf + gauss", "unknown kernel 'gauss'"),
    ("(rbf + linear) * periodic", "parentheses are not supported"),
    ("rbf - linear", "unexpected '-' at column 5"),
])
def test_bad_expressions_give_one_line(expression, message):
    with pytest.raises(UsageError, match=re.escape(message)) as info:
        parse_kernel(expression)
    assert "\n" not in str(info.value)


def _matrix(expression, values, X1, X2=None):
    kernel = parse_kernel(expression)
    return kernel.matrix(kernel.from_dict(values, X1.shape[1]), X1, X2)


@pytest.fixture
def points():
    rng = np.random.default_rng(0)
    return rng.normal(size=(7, 2)), rng.normal(size=(5, 2))


@pytest.mark.parametrize("expression, values, reference", [
    ("rbf", {"signal_std": 1.5, "lengthscale": [0.7, 2.0]}, 1.5 ** 2 * sk.RBF([0.7, 2.0])),
    ("matern12", {"signal_std": 1.0, "lengthscale": [0.7, 2.0]}, sk.Matern([0.7, 2.0], nu=0.5)),
    ("matern32", {"signal_std": 1.0, "lengthscale": [0.7, 2.0]}, sk.Matern([0.7, 2.0], nu=1.5)),
    ("matern52", {"signal_std": 0.5, "lengthscale": [0.7, 2.0]}, 0.25 * sk.Matern([0.7, 2.0], nu=2.5)),
    ("rq", {"signal_std": 1.0, "lengthscale": 0.8, "alpha": 0.3}, sk.RationalQuadratic(0.8, 0.3)),
    ("linear", {"signal_std": 2.0}, 4.0 * sk.DotProduct(sigma_0=0.0)),
    ("rbf + matern52 * rq", {"rbf.signal_std": 0.5, "rbf.lengthscale": 1.2, "matern52.signal_std": 2.0,
                             "matern52.lengthscale": 0.9, "rq.lengthscale": 3.0, "rq.alpha": 2.0},
     0.25 * sk.RBF(1.2) + 4.0 * sk.Matern(0.9, nu=2.5) * sk.RationalQuadratic(3.0, 2.0)),
])
def test_kernel_values_equal_scikit_learn(points, expression, values, reference):
    X1, X2 = points
    np.testing.assert_allclose(_matrix(expression, values, X1, X2), reference(X1, X2), rtol=1e-12, atol=1e-12)
    kernel = parse_kernel(expression)
    np.testing.assert_allclose(kernel.diag(kernel.from_dict(values, 2), X1), np.diag(reference(X1)), rtol=1e-12)


def test_periodic_is_exp_sine_squared_in_one_dimension():
    x = np.linspace(-2, 3, 9)[:, None]
    ours = _matrix("periodic", {"signal_std": 1.0, "lengthscale": 0.6, "period": 1.7}, x)
    np.testing.assert_allclose(ours, sk.ExpSineSquared(0.6, 1.7)(x), rtol=1e-12)
    # one period apart = the same point
    shifted = _matrix("periodic", {"signal_std": 1.0, "lengthscale": 0.6, "period": 1.7}, x, x + 1.7)
    np.testing.assert_allclose(np.diag(shifted), 1.0)


def test_neural_network_kernel_closed_form():
    """k = 2/pi asin(2 x~S x~' / sqrt((1 + 2 x~S x~)(1 + 2 x~'S x~'))), x~ = (1, x), S = diag(b^2, w^2)."""
    b, w = 0.8, 1.3
    x, z = 0.4, -1.1
    s = lambda u, v: b ** 2 + w ** 2 * u * v  # noqa: E731
    expected = 2 / np.pi * np.arcsin(2 * s(x, z) / np.sqrt((1 + 2 * s(x, x)) * (1 + 2 * s(z, z))))
    K = _matrix("nn", {"signal_std": 1.0, "bias_std": b, "weight_std": w}, np.array([[x]]), np.array([[z]]))
    assert K[0, 0] == pytest.approx(expected, rel=1e-12)
    kernel = parse_kernel("nn")
    theta = kernel.from_dict({"signal_std": 1.0, "bias_std": b, "weight_std": w}, 1)
    assert kernel.diag(theta, np.array([[x]]))[0] == pytest.approx(kernel.matrix(theta, np.array([[x]]))[0, 0])


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_analytic_gradients_match_finite_differences(expression):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(6, 2))
    kernel = parse_kernel(expression)
    theta = kernel.random_theta(2, rng)
    pairs = Pairs(X)
    _, gradients = kernel.matrix_and_gradients(theta, X, pairs)
    gradients = list(gradients)
    assert len(gradients) == len(theta)
    probe = rng.normal(size=(6, 6))
    h = 1e-6
    for i, g in enumerate(gradients):
        step = np.eye(len(theta))[i] * h
        numeric = np.sum(probe * (kernel.matrix(theta + step, X) - kernel.matrix(theta - step, X))) / (2 * h)
        assert np.sum(probe * g) == pytest.approx(numeric, rel=1e-6, abs=1e-7), kernel.layout(2)[i]


def test_matrix_and_gradients_returns_the_same_matrix():
    X = np.random.default_rng(2).normal(size=(8, 1))
    kernel = parse_kernel("rbf + periodic * rbf")
    theta = kernel.default_theta(1)
    K, _ = kernel.matrix_and_gradients(theta, X)
    np.testing.assert_allclose(K, kernel.matrix(theta, X), rtol=1e-14)


def test_to_dict_from_dict_round_trip():
    kernel = parse_kernel("rbf + periodic")
    theta = kernel.random_theta(3, np.random.default_rng(3))
    values = kernel.to_dict(theta, 3)
    assert len(values["rbf.lengthscale"]) == 3 and isinstance(values["rbf.signal_std"], float)
    np.testing.assert_allclose(kernel.from_dict(values, 3), theta)
    with pytest.raises(UsageError, match="'periodic.period' missing"):
        kernel.from_dict({k: v for k, v in values.items() if k != "periodic.period"}, 3)


@pytest.mark.parametrize("expression, values", [
    ("matern32", {"signal_std": 1.3, "lengthscale": 0.5}),
    ("rbf + periodic", {"rbf.signal_std": 0.5, "rbf.lengthscale": 2.0, "periodic.signal_std": 1.0,
                        "periodic.lengthscale": 1.0, "periodic.period": 0.8}),
])
def test_prior_samples_have_the_kernels_covariance(expression, values):
    X = np.linspace(0, 2, 6)[:, None]
    samples = sample_prior(parse_kernel(expression), X, n_samples=40_000, seed=4, hyperparameters=values)
    assert samples.shape == (40_000, 6)
    K = _matrix(expression, values, X)
    empirical = samples.T @ samples / len(samples)
    # standard error of an entry is about sqrt((K_ii K_jj + K_ij^2) / N) <= sqrt(2 max K^2 / N) ~ 0.007 max K
    np.testing.assert_allclose(empirical, K, atol=0.035 * K.max())
    assert np.abs(samples.mean(axis=0)).max() < 0.03 * np.sqrt(K.max())


def test_jittered_cholesky_adds_jitter_only_when_needed():
    A = np.random.default_rng(5).normal(size=(30, 30))
    L, jitter = jittered_cholesky(A @ A.T + np.eye(30))
    assert jitter == 0.0 and np.allclose(L @ L.T, A @ A.T + np.eye(30))
    x = np.linspace(0, 1, 200)[:, None]
    K = _matrix("rbf", {"signal_std": 1.0, "lengthscale": 1.0}, x)  # rank-deficient in float64
    L, jitter = jittered_cholesky(K)
    assert 0 < jitter <= 1e-2
    np.testing.assert_allclose(L @ L.T, K + jitter * np.eye(200), atol=1e-12)
    assert np.all(np.triu(L, 1) == 0)
