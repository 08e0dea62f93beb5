"""What every GP backend shares: inputs checked, data standardised, hyperparameters in the data's units.

`gp_hpo.gp.ExactGP` (NumPy/SciPy) and `gp_hpo.gp_gpytorch.GPyTorchGP` both derive from
`StandardisedGP` and import nothing from each other. Inputs are standardised per column and targets
to mean 0, std 1 (as scikit-learn's `normalize_y`); a backend optimises log-hyperparameters in
those units, and everything reported is converted back to the data's units.
"""
import math

import numpy as np

from common.errors import DlsuiteError, UsageError
from gp_hpo.gp_init import start_plan
from gp_hpo.kernels import parse_kernel


def standardiser(values):
    """(mean, std) per column of values (n, k), with std 1 where a column is constant."""
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
    """The kernel and noise setting, the data standardised, where the fit starts (`plan`, a
    `gp_hpo.gp_init.StartPlan`), the conversion of hyperparameters between standardised and data
    units, and the reported results. A backend's `fit` calls `_set_data`, then sets `_theta`
    (kernel log-hyperparameters, standardised), `_noise_var`, `_lml`, `optimisation` and `_fitted`.

    Parameter vectors hold the kernel's log-hyperparameters in `kernel.layout(d)` order and the
    log noise std last, standardised. With a `white` term in the kernel and `noise_std=None`, the
    likelihood noise is fixed at its floor (1e-4 of y's std): the white term is the noise model.
    """

    def __init__(self, kernel, noise_std=None):
        self.kernel = parse_kernel(kernel) if isinstance(kernel, str) else kernel
        if noise_std is not None and not noise_std > 0:
            raise UsageError(f"noise_std must be positive (or None to fit it), got {noise_std}")
        self.noise_std = noise_std
        self.optimisation = None
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
        self.x_mean, self.x_std = standardiser(X)
        y_mean, y_std = standardiser(y[:, None])
        self.y_mean, self.y_std = float(y_mean[0]), float(y_std[0])
        self._Xs = (X - self.x_mean) / self.x_std
        self._ys = (y - self.y_mean) / self.y_std
        # log(data-unit value / standardised value) of every kernel slot, then of the noise std
        self._shift = np.array([math.log(self.x_std[s.dim or 0]) if s.spec.unit == "x"
                                else math.log(self.y_std) if s.spec.unit == "y" else 0.0
                                for s in self.kernel.layout(self.d)] + [math.log(self.y_std)])
        self.plan = start_plan(self.kernel, X, y, self.x_std, self.y_std, self.noise_std)

    def _starts(self, restarts, seed):
        """The plan's start, then `restarts` random ones (seeded): full parameter vectors."""
        rng = np.random.default_rng(seed)
        return [self.plan.start] + [self.plan.restart(rng) for _ in range(restarts)]

    def _to_dict(self, params):
        """{name: value} in the data's units, with noise_std, of a parameter vector."""
        values = self.kernel.to_dict(params[:-1] + self._shift[:-1], self.d)
        values["noise_std"] = float(math.exp(params[-1] + self._shift[-1]))
        return values

    def _record(self, start, params, lml, evaluations):
        """One entry of `optimisation`: the start and end hyperparameters (data units), log p(y), evaluations."""
        return {"start": self._to_dict(start), "end": self._to_dict(params), "lml": float(lml),
                "evaluations": int(evaluations)}

    def _standardised(self, values):
        """A full parameter vector (standardised) from a `hyperparameters()`-style dict; the
        noise from the dict unless it is fixed."""
        theta = self.kernel.from_dict(values, self.d) - self._shift[:-1]
        if self.plan.fixed[-1]:
            return np.append(theta, self.plan.start[-1])
        if "noise_std" not in values or not values["noise_std"] > 0:
            raise UsageError("hyperparameters need a positive 'noise_std' (or construct the GP with noise_std=...)")
        return np.append(theta, math.log(values["noise_std"]) - self._shift[-1])

    def _check_fitted(self):
        if not self._fitted:
            raise DlsuiteError("the GP is not fitted: call fit(X, y) first")

    def hyperparameters(self):
        """Every hyperparameter in the data's units: {name: float, or list per input dimension}, with noise_std."""
        self._check_fitted()
        return self._to_dict(np.append(self._theta, 0.5 * math.log(self._noise_var)))

    def log_marginal_likelihood(self):
        """log p(y | X) of the fitted hyperparameters, y in its own units (nats)."""
        self._check_fitted()
        return self._lml
