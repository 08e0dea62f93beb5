"""Exact Gaussian-process regression from scratch (D2L 18.3), and its command line.

Public interface (stable; `gp_hpo.hpo`'s Bayesian optimisation builds on it):

    from gp_hpo.kernels import parse_kernel
    from gp_hpo.gp import ExactGP
    gp = ExactGP(parse_kernel("matern52"), noise_std=None)   # None: fit the noise too
    gp.fit(X, y, restarts=3, seed=0)        # X (n, d) float64, y (n,); returns gp
    mean, std = gp.predict(X_new, include_noise=False)       # (m,), (m,), in y's units
    mean, cov = gp.posterior(X_new)         # (m,), (m, m) epistemic covariance
    gp.log_marginal_likelihood()            # log p(y | X, hyperparameters), y in its own units
    gp.hyperparameters()                    # {"lengthscale": .., "signal_std": .., "noise_std": ..}
    gp.fit(X, y, hyperparameters=gp.hyperparameters())       # condition without optimising

Inputs are standardised per dimension and targets to mean 0, std 1 inside (as scikit-learn's
`normalize_y`); every reported number (hyperparameters, predictions, log marginal likelihood)
is in the data's units. The hyperparameters are optimised as logarithms (positivity) with
L-BFGS-B on the exact log marginal likelihood and its analytic gradient
dL/dtheta_i = 1/2 tr((alpha alpha^T - K^-1) dK/dtheta_i), from the defaults and then
`restarts` random starts, keeping the best.

Why NumPy/SciPy and not TensorFlow: an exact GP is a handful of dense float64 LAPACK calls
(one Cholesky `dpotrf`, one inverse from it `dpotri`, triangular solves) per evaluation, which
NumPy/SciPy call directly with no graph or autodiff overhead; the gradient is analytic, so
L-BFGS-B (quasi-Newton, 20-60 evaluations) replaces hundreds of Adam steps; and float64
Cholesky with adaptive jitter stays stable for n in the thousands, where float32 (the deep
learning default) loses positive definiteness. Gradient matrices are produced one at a time,
so memory is a few n x n arrays (about 1 GB at n = 5,000). Predictions run in batches.

Command line:

    python -m gp_hpo.gp fit [--kernel "rbf + periodic * rbf"] [--data FILE.csv --x a,b --y y]
                            [--backend numpy|gpytorch] [--run-dir DIR]
    python -m gp_hpo.gp predict --x 0.5,1.0,2.5 | --data FILE.csv [--run-dir DIR]
    python -m gp_hpo.gp plot [--run-dir DIR]

`fit` (on the book's data by default: y = sin x + 0.5 sin 4x + N(0, 0.25^2), 50 points on
[0, 5]) prints JSON with every fitted hyperparameter, `log_marginal_likelihood`, `n` and
`seconds`, writes `fit.png` and saves the model (`model.json`, `data.npz`) in the run directory;
`predict` writes `predictions.csv` and prints `mean` and `std` (and `rmse`, `nlpd`,
`coverage_95` when the file has the y column); `plot` redraws `fit.png` and draws prior and
posterior function samples into `samples.png`.
"""
import contextlib
import csv
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common import cli
from common.errors import DatasetError, DlsuiteError, UsageError
from gp_hpo.kernels import NOISE_STD, Pairs, jittered_cholesky, parse_kernel, symmetrize_from_lower

LOG_2PI = math.log(2.0 * math.pi)


SMALL_N = 1000  # below this many training points BLAS runs on one thread
_BLAS = []


def _blas_threads(n):
    """A context limiting BLAS to one thread when n < SMALL_N: for small matrices threads only add
    synchronisation, and on a busy machine a descheduled BLAS thread made a 50-point fit 100x slower."""
    if n >= SMALL_N:
        return contextlib.nullcontext()
    if not _BLAS:
        import scipy.linalg  # noqa: F401  (loads SciPy's BLAS, so the controller sees it)
        from threadpoolctl import ThreadpoolController

        _BLAS.append(ThreadpoolController())
    return _BLAS[0].limit(limits=1, user_api="blas")


def _standardiser(values):
    """(mean, std) per column with std 1 where a column is constant."""
    mean = values.mean(axis=0)
    std = values.std(axis=0)
    return mean, np.where(std > 0, std, 1.0)


def as_inputs(X, d=None):
    """X as a float64 (n, d) array (a 1-D array is n points of one dimension); UsageError otherwise."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None] if d in (None, 1) else X[None, :]
    if X.ndim != 2 or (d is not None and X.shape[1] != d):
        raise UsageError(f"inputs must have shape (n, {d or 'd'}), got {X.shape}")
    if not np.all(np.isfinite(X)):
        raise UsageError("inputs contain NaN or infinity")
    return X


class StandardisedGP:
    """What every GP backend shares: the kernel and noise setting, the data standardised (inputs
    per column, targets to mean 0, std 1), the conversion of hyperparameters between standardised
    and data units, and the reported results. A backend's `fit` calls `_set_data`, then sets
    `_theta` (kernel log-hyperparameters, standardised), `_noise_var`, `_lml` and `_fitted`.
    """

    def __init__(self, kernel, noise_std=None):
        self.kernel = parse_kernel(kernel) if isinstance(kernel, str) else kernel
        if noise_std is not None and not noise_std > 0:
            raise UsageError(f"noise_std must be positive (or None to fit it), got {noise_std}")
        self.noise_std = noise_std
        self._fitted = False

    def _set_data(self, X, y):
        X = as_inputs(X)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if len(y) != len(X) or len(X) == 0:
            raise UsageError(f"X has {len(X)} rows but y has {len(y)} values (need the same, at least 1)")
        if not np.all(np.isfinite(y)):
            raise UsageError("targets contain NaN or infinity")
        self.X, self.y = X, y
        self.d = X.shape[1]
        self.x_mean, self.x_std = _standardiser(X)
        y_mean, y_std = _standardiser(y[:, None])
        self.y_mean, self.y_std = float(y_mean[0]), float(y_std[0])
        self._Xs = (X - self.x_mean) / self.x_std
        self._ys = (y - self.y_mean) / self.y_std
        # log(data-unit value / standardised value) of every kernel slot
        self._shift = np.array([math.log(self.x_std[s.dim]) if s.spec.unit == "x"
                                else math.log(self.y_std) if s.spec.unit == "y" else 0.0
                                for s in self.kernel.layout(self.d)])

    def _fixed_log_noise(self):
        """log noise std (standardised) when it is fixed, else None."""
        return None if self.noise_std is None else math.log(self.noise_std / self.y_std)

    def _standardised(self, values):
        """(kernel theta, log noise std), standardised, from a `hyperparameters()`-style dict."""
        theta = self.kernel.from_dict(values, self.d) - self._shift
        fixed = self._fixed_log_noise()
        if fixed is not None:
            return theta, fixed
        if "noise_std" not in values or not values["noise_std"] > 0:
            raise UsageError("hyperparameters need a positive 'noise_std' (or construct the GP with noise_std=...)")
        return theta, math.log(values["noise_std"] / self.y_std)

    def _check_fitted(self):
        if not self._fitted:
            raise DlsuiteError("the GP is not fitted: call fit(X, y) first")

    def hyperparameters(self):
        """Every hyperparameter in the data's units: {name: float, or list per input dimension}, with noise_std."""
        self._check_fitted()
        values = self.kernel.to_dict(self._theta + self._shift, self.d)
        values["noise_std"] = float(math.sqrt(self._noise_var) * self.y_std)
        return values

    def log_marginal_likelihood(self):
        """log p(y | X) of the fitted hyperparameters, y in its own units (nats)."""
        self._check_fitted()
        return self._lml


class ExactGP(StandardisedGP):
    """Exact GP regression with a zero-mean prior on standardised targets (see the module docstring).

    `kernel`: a `gp_hpo.kernels.Kernel` or an expression string. `noise_std`: fixed observation
    noise standard deviation in y's units, or None to fit it (bounded below by 1e-4 y-stds).
    """

    # --- fitting -----------------------------------------------------------------
    def fit(self, X, y, restarts=3, seed=0, hyperparameters=None, max_iter=500):
        """Fit every hyperparameter by maximising the log marginal likelihood and condition on (X, y).

        X (n, d), y (n,). `restarts`: random starts after the one from the defaults (0: one
        optimisation). `hyperparameters`: a dict as `hyperparameters()` returns (data units);
        when given, nothing is optimised and the GP conditions on those values. Returns self.
        """
        self._set_data(X, y)
        with _blas_threads(len(self._ys)):
            if hyperparameters is not None:
                theta, log_noise = self._standardised(hyperparameters)
                params = theta if self.noise_std is not None else np.append(theta, log_noise)
                self.optimisation = None
            else:
                params = self._optimise(restarts, seed, max_iter)
            self._condition(params)
        return self

    def _split(self, params):
        """(kernel theta, log noise std), standardised units."""
        fixed = self._fixed_log_noise()
        return (params, fixed) if fixed is not None else (params[:-1], params[-1])

    def _negative_lml(self, params, pairs):
        """(-log marginal likelihood / n, its gradient) on the standardised data."""
        theta, log_noise = self._split(params)
        n = len(self._ys)
        try:
            K, gradients = self.kernel.matrix_and_gradients(theta, self._Xs, pairs)
            noise_var = math.exp(2.0 * log_noise)
            K[np.diag_indices_from(K)] += noise_var
            L, _ = jittered_cholesky(K, overwrite=True, clean=False)
        except np.linalg.LinAlgError:
            return 1e10, np.zeros_like(params)
        from scipy.linalg import blas, cho_solve, lapack

        alpha = cho_solve((L, True), self._ys, check_finite=False)
        lml = -0.5 * self._ys @ alpha - np.log(np.diag(L)).sum() - 0.5 * n * LOG_2PI
        # W = K^-1 - alpha alpha^T, built in L's memory (dpotri reads and writes one triangle).
        W, info = lapack.dpotri(L.T, lower=0, overwrite_c=1)
        W = W.T
        if info != 0:
            return 1e10, np.zeros_like(params)
        symmetrize_from_lower(W)
        blas.dger(-1.0, alpha, alpha, a=W.T, overwrite_a=1)  # W -= alpha alpha^T in place
        grad = [-0.5 * np.vdot(W, g) for g in gradients]
        if self._fixed_log_noise() is None:
            grad.append(-noise_var * np.trace(W))
        return -lml / n, -np.array(grad) / n

    def _optimise(self, restarts, seed, max_iter):
        from scipy.optimize import minimize

        rng = np.random.default_rng(seed)
        pairs = Pairs(self._Xs)
        fit_noise = self.noise_std is None
        bounds = self.kernel.bounds(self.d) + ([tuple(np.log(NOISE_STD.bounds))] if fit_noise else [])
        starts = [np.append(self.kernel.default_theta(self.d), math.log(NOISE_STD.default))]
        for _ in range(restarts):
            starts.append(np.append(self.kernel.random_theta(self.d, rng), rng.uniform(*np.log(NOISE_STD.prior))))
        best, history = None, []
        for x0 in starts:
            x0 = np.clip(x0 if fit_noise else x0[:-1], *np.array(bounds).T)
            # L-BFGS-B's first trial point is x0 - gradient: scale the objective so that it moves
            # each log-hyperparameter by at most 0.5, instead of jumping to a bound (where, e.g.,
            # a tiny lengthscale makes the kernel white noise and every gradient vanish).
            _, g0 = self._negative_lml(x0, pairs)
            c = 1.0 / max(1.0, 2.0 * float(np.max(np.abs(g0))))
            result = minimize(lambda v: tuple(c * r for r in self._negative_lml(v, pairs)), x0, jac=True,
                              method="L-BFGS-B", bounds=bounds, options={"maxiter": max_iter, "gtol": 1e-5 * c})
            result.fun /= c
            history.append({"lml": float(-result.fun * len(self._ys) - len(self._ys) * math.log(self.y_std)),
                            "evaluations": int(result.nfev)})
            if np.isfinite(result.fun) and (best is None or result.fun < best.fun):
                best = result
        self.optimisation = history
        if best is None or best.fun >= 1e10:
            raise DlsuiteError("the GP fit failed: the kernel matrix is not positive definite at any start; "
                               "try another kernel or fix --noise-std")
        return best.x

    def _condition(self, params):
        from scipy.linalg import cho_solve

        self._params = np.asarray(params, dtype=np.float64)
        self._theta, log_noise = self._split(self._params)
        self._noise_var = math.exp(2.0 * log_noise)
        K = self.kernel.matrix(self._theta, self._Xs)
        K[np.diag_indices_from(K)] += self._noise_var
        try:
            self._L, self.jitter = jittered_cholesky(K, overwrite=True)
        except np.linalg.LinAlgError:
            raise DlsuiteError("the kernel matrix is not positive definite even with jitter; "
                               "the hyperparameters are degenerate (raise noise_std)") from None
        self._alpha = cho_solve((self._L, True), self._ys, check_finite=False)
        n = len(self._ys)
        self._lml = float(-0.5 * self._ys @ self._alpha - np.log(np.diag(self._L)).sum() - 0.5 * n * LOG_2PI
                          - n * math.log(self.y_std))
        self._fitted = True

    # --- results -----------------------------------------------------------------
    def predict(self, X_new, include_noise=False, batch_size=2048):
        """Posterior mean and standard deviation at X_new (m, d): two (m,) arrays in y's units.

        `include_noise=True` adds the observation noise (the predictive distribution of a new
        y); otherwise the std is epistemic (of f). Runs `batch_size` points at a time.
        """
        from scipy.linalg import solve_triangular

        self._check_fitted()
        Xs = (as_inputs(X_new, self.d) - self.x_mean) / self.x_std
        mean, var = np.empty(len(Xs)), np.empty(len(Xs))
        with _blas_threads(len(self._ys)):
            for start in range(0, len(Xs), batch_size):
                batch = Xs[start:start + batch_size]
                Ks = self.kernel.matrix(self._theta, batch, self._Xs)
                mean[start:start + batch_size] = Ks @ self._alpha
                v = solve_triangular(self._L, Ks.T, lower=True, check_finite=False)
                var[start:start + batch_size] = self.kernel.diag(self._theta, batch) - np.einsum("ij,ij->j", v, v)
        var = np.maximum(var, 0.0) + (self._noise_var if include_noise else 0.0)
        return mean * self.y_std + self.y_mean, np.sqrt(var) * self.y_std

    def posterior(self, X_new, include_noise=False):
        """Posterior mean (m,) and covariance (m, m) of f at X_new (plus noise on the diagonal
        with `include_noise`), in y's units."""
        from scipy.linalg import solve_triangular

        self._check_fitted()
        Xs = (as_inputs(X_new, self.d) - self.x_mean) / self.x_std
        Ks = self.kernel.matrix(self._theta, Xs, self._Xs)
        v = solve_triangular(self._L, Ks.T, lower=True, check_finite=False)
        cov = self.kernel.matrix(self._theta, Xs) - v.T @ v
        if include_noise:
            cov[np.diag_indices_from(cov)] += self._noise_var
        return (Ks @ self._alpha) * self.y_std + self.y_mean, cov * self.y_std ** 2

    def sample_posterior(self, X_new, n_samples=1, seed=0):
        """Functions drawn from the posterior at X_new: (n_samples, m), in y's units."""
        mean, cov = self.posterior(X_new)
        L, _ = jittered_cholesky(cov)
        return mean + (L @ np.random.default_rng(seed).standard_normal((len(mean), n_samples))).T


def make_gp(kernel, backend="numpy", noise_std=None, iterations=100, lr=0.1, optimizer="lbfgs"):
    """An `ExactGP` ("numpy") or a `gp_hpo.gp_gpytorch.GPyTorchGP` ("gpytorch") with the same interface;
    `iterations`, `lr` and `optimizer` are the GPyTorch backend's."""
    if backend == "gpytorch":
        from gp_hpo.gp_gpytorch import GPyTorchGP

        return GPyTorchGP(kernel, noise_std=noise_std, iterations=iterations, lr=lr, optimizer=optimizer)
    return ExactGP(kernel, noise_std=noise_std)


# --- data ----------------------------------------------------------------------------------
def book_data(n=50, noise=0.25, seed=0):
    """The book's regression data (D2L 18.3): x = linspace(0, 5, n), y = sin x + 0.5 sin 4x + N(0, noise^2).

    Returns X (n, 1), y (n,) and the noise-free function f(x).
    """
    x = np.linspace(0.0, 5.0, n)
    rng = np.random.default_rng(seed)
    return x[:, None], book_function(x) + noise * rng.standard_normal(n)


def book_function(x):
    """sin x + 0.5 sin 4x, the book's latent function."""
    return np.sin(x) + 0.5 * np.sin(4.0 * x)


def read_table(path, x_columns=(), y_column="y", require_y=True):
    """Inputs and targets from a CSV file with a header row: (X (n, d), y (n,) or None, x column names).

    `x_columns`: the input columns (empty: every column but `y_column`). `y` is None when the
    file has no `y_column` and `require_y` is False. DatasetError with one line naming the file,
    the line and the column for a missing file or column, a short row or a non-numeric value.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file (pass --data FILE.csv with a header row, e.g. x,y)")
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise DatasetError(f"{path}: empty file (expected a header row such as x,y)")
        header = [h.strip() for h in header]
        has_y = y_column in header
        x_columns = list(x_columns) or [h for h in header if h != y_column]
        missing = [c for c in x_columns + ([y_column] if require_y else []) if c not in header]
        if missing:
            raise DatasetError(f"{path}: missing column{'s' * (len(missing) > 1)} {', '.join(map(repr, missing))} "
                               f"(columns: {', '.join(header)}; choose with --x and --y)")
        if not x_columns:
            raise DatasetError(f"{path}: no input column besides {y_column!r}")
        wanted = x_columns + ([y_column] if has_y else [])
        index = [header.index(c) for c in wanted]
        rows = []
        for row in reader:
            if not row or all(not v.strip() for v in row):
                continue
            if len(row) != len(header):
                raise DatasetError(f"{path} line {reader.line_num}: {len(row)} fields, the header has {len(header)}")
            values = []
            for c, i in zip(wanted, index):
                try:
                    v = float(row[i])
                except ValueError:
                    raise DatasetError(f"{path} line {reader.line_num}: column {c!r} is not a number: {row[i]!r}") from None
                if not math.isfinite(v):
                    raise DatasetError(f"{path} line {reader.line_num}: column {c!r} is not finite: {row[i]!r}")
                values.append(v)
            rows.append(values)
    if not rows:
        raise DatasetError(f"{path}: no data rows after the header")
    table = np.array(rows)
    d = len(x_columns)
    return table[:, :d], (table[:, d] if has_y else None), x_columns


def _columns(text):
    return [c.strip() for c in text.split(",") if c.strip()]


def load_training_data(config):
    """(X, y, x column names, y column name, f or None): --data's columns, or the book's data."""
    if config.data:
        X, y, names = read_table(config.data, _columns(config.x), config.y)
        return X, y, names, config.y, None
    X, y = book_data(config.n, config.data_noise, config.seed)
    return X, y, ["x"], "y", book_function


# --- command line ----------------------------------------------------------------------------
@dataclass
class Config(cli.Config):
    kernel: str = field(default="rbf", metadata={
        "help": 'kernel expression: sums and products of rbf, matern12, matern32, matern52, rq, periodic, '
                'linear, nn, e.g. "rbf + periodic * rbf"'})
    backend: str = field(default="numpy", metadata={
        "choices": ["numpy", "gpytorch"], "help": "numpy: our exact GP; gpytorch: the same model in GPyTorch"})
    noise_std: float = field(default=0.0, metadata=cli.bounds(
        "[0, inf)", "fixed observation noise std in y's units (0: fit it)"))
    restarts: int = field(default=3, metadata=cli.bounds(
        "[0, inf)", "random optimiser starts after the one from the default hyperparameters"))
    data: str = field(default="", metadata={
        "help": "CSV file with a header row; empty: the book's data, sin x + 0.5 sin 4x plus noise"})
    x: str = field(default="", metadata={"help": "comma-separated input columns of --data; empty: all but --y"})
    y: str = field(default="y", metadata={"help": "target column of --data"})
    n: int = field(default=50, metadata=cli.at_least(1, "points of the book's data on [0, 5]"))
    data_noise: float = field(default=0.25, metadata=cli.bounds("[0, inf)", "noise std of the book's data"))
    optimizer: str = field(default="lbfgs", metadata={
        "choices": ["lbfgs", "adam"], "help": "gpytorch backend's optimiser: torch L-BFGS, or Adam (the book's)"})
    iterations: int = field(default=100, metadata=cli.at_least(
        1, "gpytorch backend: L-BFGS iterations (at most) or Adam steps per start"))
    lr: float = field(default=0.1, metadata=cli.positive("Adam learning rate (gpytorch backend)"))
    seed: int = field(default=0, metadata={"help": "seed of the book's data and of the random restarts"})

    def validate(self):
        super().validate()
        parse_kernel(self.kernel)


DEMO = {"restarts": 1}
PRESETS = {"book": {"kernel": "rbf", "optimizer": "adam", "lr": 0.1, "iterations": 50}}
MODEL_FILE, DATA_FILE = "model.json", "data.npz"


def _noise(config):
    return config.noise_std if config.noise_std > 0 else None


def fit(ctx):
    """Fit the GP's hyperparameters, save the model, plot the fit, return the hyperparameters."""
    config = ctx.config
    X, y, x_names, y_name, truth = load_training_data(config)
    gp = make_gp(config.kernel, config.backend, _noise(config), config.iterations, config.lr, config.optimizer)
    start = time.perf_counter()
    gp.fit(X, y, restarts=config.restarts, seed=config.seed)
    seconds = time.perf_counter() - start
    run = ctx.run()
    hyperparameters = gp.hyperparameters()
    metrics = {**hyperparameters, "log_marginal_likelihood": gp.log_marginal_likelihood(), "n": len(y),
               "seconds": round(seconds, 4), "kernel": gp.kernel.expression, "backend": config.backend}
    np.savez(run.file(DATA_FILE), X=X, y=y)
    run.write_json(MODEL_FILE, {"kernel": gp.kernel.expression, "backend": config.backend,
                                "noise_std_fixed": _noise(config), "hyperparameters": hyperparameters,
                                "x_columns": x_names, "y_column": y_name,
                                "log_marginal_likelihood": metrics["log_marginal_likelihood"]})
    run.write_json("metrics.json", metrics)
    from gp_hpo.gp_plots import plot_fit

    plot_fit(gp, X, y, run.file("fit.png"), x_names, y_name, truth,
             title=f"{gp.kernel.expression}: noise_std {hyperparameters['noise_std']:.3g}")
    return metrics


def restore(run_dir):
    """(fitted GP, model.json dict) of a `fit` run, conditioned on its saved data and hyperparameters."""
    path = Path(run_dir) / MODEL_FILE
    if not path.is_file() or not (Path(run_dir) / DATA_FILE).is_file():
        raise UsageError(f"{run_dir} holds no fitted GP ({MODEL_FILE}, {DATA_FILE}); run `fit` into it first")
    saved = json.loads(path.read_text())
    data = np.load(Path(run_dir) / DATA_FILE)
    gp = make_gp(saved["kernel"], saved["backend"], saved["noise_std_fixed"])
    gp.fit(data["X"], data["y"], hyperparameters=saved["hyperparameters"])
    return gp, saved


def parse_points(text, d):
    """Inputs from --x: "0.5,1,2.5" is three points when d = 1; rows separated by ';' otherwise."""
    try:
        if ";" in text or d > 1:
            rows = [[float(v) for v in row.split(",")] for row in text.split(";") if row.strip()]
        else:
            rows = [[float(v)] for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--x {text!r}: expected numbers separated by commas (rows by ';' for {d} inputs)") from None
    if not rows or any(len(r) != d for r in rows):
        raise UsageError(f"--x {text!r}: every point needs {d} value{'s' * (d > 1)} (the model's inputs)")
    return np.array(rows)


def predictive_metrics(y, mean, std):
    """rmse, nlpd (mean negative log density of y under N(mean, std^2)) and coverage_95 (|y - mean| <= 1.96 std)."""
    std = np.maximum(std, 1e-300)
    z = (y - mean) / std
    return {"rmse": float(np.sqrt(np.mean((y - mean) ** 2))),
            "nlpd": float(np.mean(0.5 * z ** 2 + np.log(std) + 0.5 * LOG_2PI)),
            "coverage_95": float(np.mean(np.abs(z) <= 1.959963984540054))}


def predict(ctx):
    """Predict at --x or at --data's rows; writes predictions.csv; scores against y when present."""
    args = ctx.args
    gp, saved = restore(ctx.run_dir)
    d = len(saved["x_columns"])
    if (args.x is None) == (args.data is None):
        raise UsageError("give exactly one of --x VALUES and --data FILE.csv")
    y = None
    if args.x is not None:
        X = parse_points(args.x, d)
    else:
        X, y, _ = read_table(args.data, saved["x_columns"], saved["y_column"], require_y=False)
    mean, f_std = gp.predict(X)
    _, std = gp.predict(X, include_noise=True)
    out = Path(args.output) if args.output else Path(ctx.run_dir) / "predictions.csv"
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*saved["x_columns"], "mean", "std", "f_std"] + ([saved["y_column"]] if y is not None else []))
        columns = [*X.T, mean, std, f_std] + ([y] if y is not None else [])
        writer.writerows(np.column_stack(columns).tolist())
    result = {"mean": mean.tolist(), "std": std.tolist(), "f_std": f_std.tolist(), "predictions": str(out)}
    if y is not None:
        result.update(predictive_metrics(y, mean, std))
    return result


def plot(ctx):
    """Redraw fit.png and draw prior and posterior function samples (samples.png) of a fitted run."""
    from gp_hpo.gp_plots import plot_fit, plot_samples

    gp, saved = restore(ctx.run_dir)
    truth = None if ctx.config.data else book_function
    paths = [plot_fit(gp, gp.X, gp.y, Path(ctx.run_dir) / "fit.png", saved["x_columns"], saved["y_column"], truth,
                      title=saved["kernel"])]
    if gp.d == 1:
        paths.append(plot_samples(gp, Path(ctx.run_dir) / "samples.png", ctx.args.samples, ctx.config.seed))
    return {"plots": [str(p) for p in paths]}


def _predict_arguments(parser):
    parser.add_argument("--x", help="input points: 0.5,1,2.5 (one input) or 0.1,0.2;0.3,0.4 (rows of several)")
    parser.add_argument("--data", help="CSV file with the model's input columns (and its y column to score)")
    parser.add_argument("--output", help="predictions CSV path (default: RUN_DIR/predictions.csv)")


def _plot_arguments(parser):
    parser.add_argument("--samples", type=cli.positive_int, default=5, help="functions drawn from prior and posterior")


COMMANDS = {
    "fit": cli.Command(fit, "fit the hyperparameters by maximum marginal likelihood, save the model, plot",
                       configurable=True, reads_data=False),
    "predict": cli.Command(predict, "posterior mean and std at --x or --data; rmse, nlpd, coverage_95 with y",
                           add_arguments=_predict_arguments, reads_data=False),
    "plot": cli.Command(plot, "redraw fit.png and draw prior/posterior samples (samples.png) of a fitted run",
                        add_arguments=_plot_arguments, reads_data=False),
}


def main(argv=None):
    return cli.main("Exact Gaussian-process regression (D2L 18)", Config, COMMANDS, demo=DEMO, argv=argv,
                    presets=PRESETS)


if __name__ == "__main__":
    sys.exit(main())
