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
    gp.optimisation                         # per start: {"start", "end" (data units), "lml", "evaluations"}
    make_gp(kernel, backend="numpy"|"gpytorch", ...)          # this class or gp_hpo.gp_gpytorch.GPyTorchGP

Inputs are standardised per dimension and targets to mean 0, std 1 inside (as scikit-learn's
`normalize_y`); every reported number (hyperparameters, predictions, log marginal likelihood)
is in the data's units. The hyperparameters are optimised as logarithms (positivity) with
L-BFGS-B on the exact log marginal likelihood and its analytic gradient
dL/dtheta_i = 1/2 tr((alpha alpha^T - K^-1) dK/dtheta_i), from the start of `gp_hpo.gp_init`
(the expression's values, else the periodogram's period and lengthscales from the data's span
and spacing) and `restarts` random starts around it, keeping the best; the expression's fixed
parameters stay out of the optimisation. Standardising and units are `gp_hpo.gp_base`'s, which the
GPyTorch backend shares; this module imports that backend only in `make_gp`.

Why NumPy/SciPy and not TensorFlow: an exact GP is a handful of dense float64 LAPACK calls
(one Cholesky `dpotrf`, one inverse from it `dpotri`, triangular solves) per evaluation, which
NumPy/SciPy call directly with no graph or autodiff overhead; the gradient is analytic, so
L-BFGS-B (quasi-Newton, 20-60 evaluations) replaces hundreds of Adam steps; and float64
Cholesky with adaptive jitter stays stable for n in the thousands, where float32 (the deep
learning default) loses positive definiteness. Gradient matrices are produced one at a time,
so memory is a few n x n arrays (about 1 GB at n = 5,000). Predictions run in batches.

Command line:

    python -m gp_hpo.gp fit [--kernel "rbf(lengthscale=50) + rbf * periodic(period=1!) + white"]
                            [--data FILE.csv --x a,b --y y]
                            [--backend numpy|gpytorch] [--run-dir DIR]
    python -m gp_hpo.gp predict --x 0.5,1.0,2.5 | --data FILE.csv [--run-dir DIR]
    python -m gp_hpo.gp plot [--run-dir DIR]

`fit` (on the book's data by default: y = sin x + 0.5 sin 4x + N(0, 0.25^2), 50 points on
[0, 5]) prints every fitted hyperparameter with its unit, then JSON with them,
`log_marginal_likelihood`, `n` and `seconds`, writes `fit.png`, `fit.json` (each start and its
log marginal likelihood) and saves the model (`model.json` with the hyperparameters' units,
`data.npz`) in the run directory; `predict` writes `predictions.csv` (and `forecast.png` with one
input) and prints `mean` and `std` (and `rmse`, `nlpd`, `coverage_95` when the file has the y
column); `plot` redraws `fit.png` and draws prior and posterior function samples into `samples.png`.
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

from common import cli, runs
from common.errors import DatasetError, DlsuiteError, UsageError
from gp_hpo.gp_base import StandardisedGP, as_inputs
from gp_hpo.kernels import Pairs, jittered_cholesky, parse_kernel, symmetrize_from_lower

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


class ExactGP(StandardisedGP):
    """Exact GP regression with a zero-mean prior on standardised targets (see the module docstring).

    `kernel`: a `gp_hpo.kernels.Kernel` or an expression string (its starting values, fixed
    parameters and bounds are honoured). `noise_std`: fixed observation noise standard deviation
    in y's units, or None to fit it (bounded below by 1e-4 y-stds; fixed there when the kernel
    has a `white` term).
    """

    # --- fitting -----------------------------------------------------------------
    def fit(self, X, y, restarts=3, seed=0, hyperparameters=None, max_iter=500):
        """Fit every free hyperparameter by maximising the log marginal likelihood and condition on (X, y).

        X (n, d), y (n,). Optimises from the start of `gp_hpo.gp_init` and then from `restarts`
        random starts around it (0: one optimisation), keeping the best; `optimisation` lists
        each start, end and log p(y). `hyperparameters`: a dict as `hyperparameters()` returns
        (data units); when given, nothing is optimised and the GP conditions on those values.
        Returns self.
        """
        self._set_data(X, y)
        with _blas_threads(len(self._ys)):
            if hyperparameters is not None:
                params = self._standardised(hyperparameters)
                self.optimisation = None
            else:
                params = self._optimise(restarts, seed, max_iter)
            self._condition(params)
        return self

    def _negative_lml(self, params, pairs):
        """(-log marginal likelihood / n, its gradient in every entry of params) on the standardised
        data; params: kernel log-hyperparameters then the log noise std."""
        theta, log_noise = params[:-1], params[-1]
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
        grad.append(-noise_var * np.trace(W))
        return -lml / n, -np.array(grad) / n

    def _optimise(self, restarts, seed, max_iter):
        from scipy.optimize import minimize

        pairs = Pairs(self._Xs)
        free = ~self.plan.fixed
        D = self.plan.scale[free]  # L-BFGS-B works on D * (free log-hyperparameters)
        bounds = [(lo * d, hi * d) for (lo, hi), d in zip(self.plan.bounds, D)]
        n = len(self._ys)
        best, history = None, []
        for start in self._starts(restarts, seed):
            full = start.copy()

            def objective(u, scale=1.0):
                full[free] = u / D
                value, grad = self._negative_lml(full, pairs)
                return scale * value, scale * grad[free] / D

            x0 = start[free] * D
            if not len(x0):  # everything fixed: nothing to optimise
                value = objective(x0)[0]
                history.append(self._record(start, start, -value * n - n * math.log(self.y_std), 1))
                best = (value, start) if best is None or value < best[0] else best
                continue
            # L-BFGS-B's first trial point is x0 - gradient: scale the objective so that it moves
            # each log-hyperparameter by at most 0.5, instead of jumping to a bound (where, e.g.,
            # a tiny lengthscale makes the kernel white noise and every gradient vanish).
            _, g0 = objective(x0)
            c = 1.0 / max(1.0, 2.0 * float(np.max(np.abs(g0))))
            result = minimize(objective, x0, args=(c,), jac=True, method="L-BFGS-B", bounds=bounds,
                              options={"maxiter": max_iter, "gtol": 1e-5 * c})
            value = result.fun / c
            end = start.copy()
            end[free] = result.x / D
            history.append(self._record(start, end, -value * n - n * math.log(self.y_std), result.nfev))
            if np.isfinite(value) and (best is None or value < best[0]):
                best = (value, end)
        self.optimisation = history
        if best is None or best[0] >= 1e10:
            raise DlsuiteError("the GP fit failed: the kernel matrix is not positive definite at any start; "
                               "try another kernel or fix --noise-std")
        return best[1]

    def _condition(self, params):
        from scipy.linalg import cho_solve

        self._params = np.asarray(params, dtype=np.float64)
        self._theta, log_noise = self._params[:-1], self._params[-1]
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
                    raise DatasetError(f"{path} line {reader.line_num}: column {c!r} is not a number: "
                                       f"{row[i]!r}") from None
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
                'linear, nn, white, e.g. "rbf + periodic * rbf"; set a start, fix or bound a hyperparameter '
                'in --x/--y units: "rbf(lengthscale=50) + rbf * periodic(period=1!) + rq(alpha=[0.1, 10])"'})
    backend: str = field(default="numpy", metadata={
        "choices": ["numpy", "gpytorch"], "help": "numpy: our exact GP; gpytorch: the same model in GPyTorch"})
    noise_std: float = field(default=0.0, metadata=cli.bounds(
        "[0, inf)", "fixed observation noise std in y's units (0: fit it)"))
    restarts: int = field(default=3, metadata=cli.bounds(
        "[0, inf)", "random optimiser starts around the first (the expression's values, else the "
                    "periodogram's period and the data's span and spacing)"))
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
    seed: int = field(default=0, metadata=cli.bounds(cli.SEED_BOUNDS["bounds"][4],
                                                     "seed of the book's data and of the random restarts"))

    def validate(self):
        super().validate()
        parse_kernel(self.kernel)


DEMO = {"restarts": 1}
PRESETS = {"book": {"kernel": "rbf", "optimizer": "adam", "lr": 0.1, "iterations": 50}}
MODEL_FILE, DATA_FILE, FIT_FILE = "model.json", "data.npz", "fit.json"


def _noise(config):
    return config.noise_std if config.noise_std > 0 else None


# config.json of a fit records only the fields that applied to it
BOOK_ONLY, CSV_ONLY, GPYTORCH_ONLY = ("n", "data_noise"), ("x", "y"), ("optimizer", "iterations", "lr")


def _applied_config(config, recorded):
    """config.json's dict without the fields that did not apply: the book data's `n` and
    `data_noise` for a CSV fit, `x` and `y` for the book's data, the GPyTorch optimiser's for numpy."""
    drop = (BOOK_ONLY if config.data else CSV_ONLY) + (GPYTORCH_ONLY if config.backend == "numpy" else ())
    return {k: v for k, v in recorded.items() if k not in drop}


def units(kernel, d, x_names, y_name):
    """{hyperparameter name: its unit}: the --x column for lengthscales and periods (a list with several
    inputs), the --y column for signal and noise stds, "1" for dimensionless ones."""
    out = {}
    for s in kernel.layout(d):
        x_unit = x_names if d > 1 else x_names[0]
        out[s.name] = x_unit if s.spec.unit == "x" else y_name if s.spec.unit == "y" else "1"
    out["noise_std"] = y_name
    return out


def _describe(hyperparameters, unit_of):
    """One line per hyperparameter: name, value(s), unit."""
    width = max(len(name) for name in hyperparameters)
    lines = []
    for name, value in hyperparameters.items():
        shown = ", ".join(f"{v:.6g}" for v in value) if isinstance(value, list) else f"{value:.6g}"
        unit = unit_of.get(name, "")
        unit = "" if unit == "1" else f" ({', '.join(unit) if isinstance(unit, list) else unit})"
        lines.append(f"  {name:<{width}}  {shown}{unit}")
    return "\n".join(lines)


def _fit(ctx):
    """Fit the GP's hyperparameters, save the model, plot the fit, return the hyperparameters.

    Prints every hyperparameter with its unit, then the JSON; writes model.json (the model,
    hyperparameters in the data's units, their units), fit.json (each start's hyperparameters,
    where it ended and its log marginal likelihood), data.npz, metrics.json and fit.png.
    """
    config = ctx.config
    X, y, x_names, y_name, truth = load_training_data(config)
    gp = make_gp(config.kernel, config.backend, _noise(config), config.iterations, config.lr, config.optimizer)
    start = time.perf_counter()
    gp.fit(X, y, restarts=config.restarts, seed=config.seed)
    seconds = time.perf_counter() - start
    run = ctx.run()
    run.write_json("config.json", _applied_config(config, json.loads(run.file("config.json").read_text())))
    hyperparameters = gp.hyperparameters()
    lml = gp.log_marginal_likelihood()
    unit_of = units(gp.kernel, gp.d, x_names, y_name)
    metrics = {**hyperparameters, "log_marginal_likelihood": lml, "n": len(y),
               "seconds": round(seconds, 4), "kernel": gp.kernel.expression, "backend": config.backend}
    np.savez(run.file(DATA_FILE), X=X, y=y)
    run.write_json(MODEL_FILE, {"kernel": gp.kernel.expression, "backend": config.backend,
                                "noise_std_fixed": _noise(config), "hyperparameters": hyperparameters,
                                "units": unit_of, "x_columns": x_names, "y_column": y_name,
                                "log_marginal_likelihood": lml})
    history = gp.optimisation or []
    run.write_json(FIT_FILE, {"kernel": gp.kernel.expression, "backend": config.backend, "seed": config.seed,
                              "best": max(range(len(history)), key=lambda i: history[i]["lml"]) if history else None,
                              "restarts": history})
    run.write_json("metrics.json", metrics)
    from gp_hpo.gp_plots import plot_fit

    plot_fit(gp, X, y, run.file("fit.png"), x_names, y_name, truth,
             title=f"{gp.kernel.expression}: noise_std {hyperparameters['noise_std']:.3g}")
    lmls = ", ".join(f"{o['lml']:.3f}" for o in history)
    print(f"{gp.kernel.expression} on {len(y)} points, log marginal likelihood {lml:.3f}"
          + (f" (starts: {lmls})" if lmls else "") + f"\n{_describe(hyperparameters, unit_of)}")
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


def _predict(ctx):
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
    if gp.d == 1:
        from gp_hpo.gp_plots import plot_forecast

        result["forecast"] = str(plot_forecast(gp, Path(ctx.run_dir) / "forecast.png", X, y, saved["x_columns"][0],
                                               saved["y_column"], title=saved["kernel"]))
    if y is not None:
        result.update(predictive_metrics(y, mean, std))
    return result


def _plot(ctx):
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


VERBS = {"train": "fit"}  # the field's word for training a GP (its hyperparameters)
COMMANDS = {
    "fit": cli.Command(_fit, "fit the hyperparameters by maximum marginal likelihood, save the model, plot",
                       configurable=True, reads_data=False),
    "predict": cli.Command(_predict, "posterior mean and std at --x or --data; rmse, nlpd, coverage_95 with y",
                           add_arguments=_predict_arguments, reads_data=False),
    "plot": cli.Command(_plot, "redraw fit.png and draw prior/posterior samples (samples.png) of a fitted run",
                        add_arguments=_plot_arguments, reads_data=False),
}
SPEC = cli.Spec("gp_hpo.gp", "Exact Gaussian-process regression (D2L 18)", Config, COMMANDS, DEMO, PRESETS)
main = SPEC.main
fit, predict, plot = SPEC.api("fit"), SPEC.api("predict"), SPEC.api("plot")


def load(run_dir=None):
    """The fitted GP of a `fit` run (default: the newest completed one), conditioned on the run's data and
    hyperparameters: an `ExactGP` (or, for `--backend gpytorch`, a `gp_hpo.gp_gpytorch.GPyTorchGP`) whose
    `predict(X_new)` gives the posterior mean and std, in the data's units."""
    if run_dir is None:
        run_dir = cli.latest_run(SPEC.prog)
        if run_dir is None:
            raise UsageError(f"no completed run under {cli.default_run_root(SPEC.prog)}; fit first or pass run_dir")
    module = runs.module_of(runs.read_config(run_dir))
    if module is not None and module != SPEC.prog:
        raise UsageError(f"{run_dir} was written by {module}; use {module}.load")
    return restore(run_dir)[0]


if __name__ == "__main__":
    sys.exit(main())
