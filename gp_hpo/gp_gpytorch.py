"""The `ExactGP` interface backed by GPyTorch (D2L 18.3): `python -m gp_hpo.gp fit --backend gpytorch`.

    gp = GPyTorchGP(parse_kernel("rbf + periodic * rbf"), noise_std=None)
    gp.fit(X, y, restarts=3, seed=0)      # or hyperparameters={...} to condition only
    mean, std = gp.predict(X_new, include_noise=False)

The same model as `gp_hpo.gp.ExactGP`: zero mean on standardised targets, standardised
inputs, each product term of the kernel expression in a `ScaleKernel`, the terms summed
(`AdditiveKernel`), a `GaussianLikelihood`, float64. Hyperparameters are trained on GPyTorch's
`ExactMarginalLogLikelihood` by torch's L-BFGS with a strong-Wolfe line search (`optimizer=
"lbfgs"`, at most `iterations` steps; converges to the same optimum as `ExactGP`) or by Adam
(`optimizer="adam"`, `iterations` steps at learning rate `lr`: the book's recipe), from the
defaults and `restarts` random starts, keeping the best. Names and units of
`hyperparameters()` are those of `ExactGP` (GPyTorch's periodic `lengthscale` is our
lengthscale squared; the conversion happens here). The neural-network kernel, which GPyTorch
lacks, is a small `gpytorch.kernels.Kernel` subclass, and so is `white`. Starts and restarts are
`gp_hpo.gp_init`'s (the same as `ExactGP`'s); an expression's fixed parameters get no gradient
and its bounds become GPyTorch `Interval` constraints (other parameters keep GPyTorch's positive
constraints, unbounded above).

`device` is a torch device ("cuda"; default the CPU). `cholesky=True` (the default) computes with Cholesky at
every size, as `ExactGP` does; `cholesky=False` keeps GPyTorch's defaults (conjugate gradients and Lanczos above 800
points), which is how the benchmark runs GPyTorch. torch and gpytorch come with the `gp`
extra and are imported when the backend is used.
"""
import contextlib
import math
import warnings

import numpy as np

from common.errors import DlsuiteError, UsageError
from common.extras import require
from gp_hpo.gp_base import StandardisedGP, as_inputs
from gp_hpo.kernels import NOISE_STD, Linear, Matern, NeuralNetwork, Periodic, RationalQuadratic, RBF, White


def _modules():
    return require("torch", "gp"), require("gpytorch", "gp")


_NN_CLASS = []


def _nn_kernel_class():
    """The GPyTorch neural-network kernel class, defined once torch is imported."""
    if _NN_CLASS:
        return _NN_CLASS[0]
    torch, gpytorch = _modules()

    class NeuralNetworkKernel(gpytorch.kernels.Kernel):
        """The arcsine (neural-network) kernel with positive bias_std and weight_std."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.register_parameter("raw_bias_std", torch.nn.Parameter(torch.zeros(1, dtype=torch.float64)))
            self.register_parameter("raw_weight_std", torch.nn.Parameter(torch.zeros(1, dtype=torch.float64)))
            self.register_constraint("raw_bias_std", gpytorch.constraints.Positive())
            self.register_constraint("raw_weight_std", gpytorch.constraints.Positive())

        def forward(self, x1, x2, diag=False, **params):
            b2 = self.raw_bias_std_constraint.transform(self.raw_bias_std) ** 2
            w2 = self.raw_weight_std_constraint.transform(self.raw_weight_std) ** 2
            n1 = 1.0 + 2.0 * (b2 + w2 * (x1 * x1).sum(-1))
            n2 = 1.0 + 2.0 * (b2 + w2 * (x2 * x2).sum(-1))
            if diag:
                z = 2.0 * (b2 + w2 * (x1 * x2).sum(-1)) / torch.sqrt(n1 * n2)
            else:
                z = 2.0 * (b2 + w2 * x1 @ x2.transpose(-1, -2)) / torch.sqrt(n1[..., :, None] * n2[..., None, :])
            return (2.0 / math.pi) * torch.asin(z.clamp(-1.0, 1.0))

    _NN_CLASS.append(NeuralNetworkKernel)
    return NeuralNetworkKernel


_WHITE_CLASS = []


def _white_kernel_class():
    """The GPyTorch white-noise kernel class (scikit-learn's WhiteKernel of unit level), defined once
    torch is imported: the identity when both inputs are the same points (GPyTorch predicts from the
    training and new points stacked, so the training block stays the identity and the cross block 0),
    zeros otherwise."""
    if _WHITE_CLASS:
        return _WHITE_CLASS[0]
    torch, gpytorch = _modules()

    class WhiteNoiseKernel(gpytorch.kernels.Kernel):
        def forward(self, x1, x2, diag=False, **params):
            same = x1.shape == x2.shape and torch.equal(x1, x2)
            if diag:
                return torch.full(x1.shape[:-1], float(same), dtype=x1.dtype, device=x1.device)
            shape = x1.shape[:-2] + (x1.shape[-2], x2.shape[-2])
            if same:
                return torch.eye(x1.shape[-2], dtype=x1.dtype, device=x1.device).expand(shape)
            return torch.zeros(shape, dtype=x1.dtype, device=x1.device)

    _WHITE_CLASS.append(WhiteNoiseKernel)
    return WhiteNoiseKernel


class _Accessor:
    """Reads and writes one of our hyperparameters (log, standardised units) on a GPyTorch module;
    `raw` is the GPyTorch parameter behind it, `power` the exponent from ours to GPyTorch's value."""

    def __init__(self, module, attribute, power=1.0):
        self.module, self.attribute, self.power = module, attribute, power

    @property
    def raw(self):
        return getattr(self.module, f"raw_{self.attribute}")

    def bound(self, low, high):
        """Constrain the value to [exp(low), exp(high)] (ours, log, per entry) with GPyTorch's Interval."""
        torch, gpytorch = _modules()
        shape = self.raw.shape
        lo, hi = (torch.as_tensor(np.exp(np.asarray(v) * self.power), dtype=torch.float64).reshape(shape)
                  for v in (low, high))
        self.module.register_constraint(f"raw_{self.attribute}", gpytorch.constraints.Interval(lo, hi))

    def get(self):
        value = getattr(self.module, self.attribute).detach().reshape(-1).cpu().numpy()
        return np.log(value) / self.power

    def set(self, log_values):
        torch = _modules()[0]
        current = getattr(self.module, self.attribute)
        value = torch.as_tensor(np.exp(np.asarray(log_values) * self.power), dtype=torch.float64,
                                device=current.device)
        setattr(self.module, self.attribute, value.reshape(current.shape))


def build_gpytorch_kernel(kernel, d):
    """(GPyTorch kernel, accessors): the expression as AdditiveKernel of ScaleKernel(product), and
    per hyperparameter slot group (in `kernel.layout(d)` order, per-dimension slots grouped) an
    `_Accessor`."""
    torch, gpytorch = _modules()
    K = gpytorch.kernels
    terms, accessors = [], []
    for term in kernel.terms:
        factors, term_accessors = [], []
        for _, base in term:
            if isinstance(base, RBF):
                m = K.RBFKernel(ard_num_dims=d)
                term_accessors.append(_Accessor(m, "lengthscale"))
            elif isinstance(base, Matern):
                m = K.MaternKernel(nu=base.nu, ard_num_dims=d)
                term_accessors.append(_Accessor(m, "lengthscale"))
            elif isinstance(base, RationalQuadratic):
                m = K.RQKernel(ard_num_dims=d)
                term_accessors += [_Accessor(m, "lengthscale"), _Accessor(m, "alpha")]
            elif isinstance(base, Periodic):
                m = K.PeriodicKernel(ard_num_dims=d)
                term_accessors += [_Accessor(m, "lengthscale", power=2.0), _Accessor(m, "period_length")]
            elif isinstance(base, Linear):
                m = K.LinearKernel()
                m.variance = torch.tensor(1.0, dtype=torch.float64)
                m.raw_variance.requires_grad_(False)
            elif isinstance(base, NeuralNetwork):
                m = _nn_kernel_class()()
                term_accessors += [_NNAccessor(m, "bias_std"), _NNAccessor(m, "weight_std")]
            elif isinstance(base, White):
                m = _white_kernel_class()()
            else:
                raise UsageError(f"the gpytorch backend has no kernel {base.name!r}")
            factors.append(m)
        product = factors[0] if len(factors) == 1 else K.ProductKernel(*factors)
        scaled = K.ScaleKernel(product)
        accessors.append(_Accessor(scaled, "outputscale", power=2.0))
        accessors += term_accessors
        terms.append(scaled)
    full = terms[0] if len(terms) == 1 else K.AdditiveKernel(*terms)
    return full.double(), accessors


class _NNAccessor(_Accessor):
    def get(self):
        raw = getattr(self.module, f"raw_{self.attribute}")
        constraint = getattr(self.module, f"raw_{self.attribute}_constraint")
        return np.log(constraint.transform(raw).detach().cpu().numpy())

    def set(self, log_values):
        torch = _modules()[0]
        raw = getattr(self.module, f"raw_{self.attribute}")
        constraint = getattr(self.module, f"raw_{self.attribute}_constraint")
        value = torch.as_tensor(np.exp(np.asarray(log_values)), dtype=torch.float64,
                                device=raw.device).reshape(raw.shape)
        with torch.no_grad():
            raw.copy_(constraint.inverse_transform(value))


class GPyTorchGP(StandardisedGP):
    """`gp_hpo.gp.ExactGP`'s interface on GPyTorch (see the module docstring)."""

    def __init__(self, kernel, noise_std=None, iterations=100, lr=0.1, cholesky=True, optimizer="lbfgs",
                 device=None):
        super().__init__(kernel, noise_std)
        if optimizer not in ("lbfgs", "adam"):
            raise UsageError(f"optimizer must be lbfgs or adam, got {optimizer!r}")
        self.iterations, self.lr, self.cholesky, self.optimizer = iterations, lr, cholesky, optimizer
        self.device = device

    def _settings(self):
        _, gpytorch = _modules()
        stack = contextlib.ExitStack()
        if self.cholesky:
            stack.enter_context(gpytorch.settings.max_cholesky_size(10 ** 9))
        return stack

    def _build(self):
        _, gpytorch = _modules()
        covar, accessors = build_gpytorch_kernel(self.kernel, self.d)
        # a fixed noise may sit at (or below) the fitted noise's floor: any positive value then
        constraint = (gpytorch.constraints.Positive() if self.plan.fixed[-1]
                      else gpytorch.constraints.GreaterThan(NOISE_STD.bounds[0] ** 2))
        likelihood = gpytorch.likelihoods.GaussianLikelihood(noise_constraint=constraint).double()

        class Model(gpytorch.models.ExactGP):
            def __init__(self, x, y):
                super().__init__(x, y, likelihood)
                self.mean_module = gpytorch.means.ZeroMean()
                self.covar_module = covar

            def forward(self, x):
                return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))

        model = Model(self._Xt, self._yt).double().to(self._Xt.device)
        likelihood.to(self._Xt.device)
        return model, likelihood, accessors

    def _slot_groups(self):
        """Per accessor, the indices of its slots in `kernel.layout(d)`."""
        groups = []
        for s_index, s in enumerate(self.kernel.layout(self.d)):
            if s.dim is None or s.dim == 0:
                groups.append([s_index])
            else:
                groups[-1].append(s_index)
        return groups

    def _constrain(self):
        """The expression's bounds as GPyTorch Interval constraints, and its fixed parameters kept
        fixed (no gradient where a whole parameter is fixed, a zeroed gradient entry where one
        dimension of it is)."""
        torch, _ = _modules()
        plan = self.plan
        for accessor, idx in zip(self._accessors, self._slot_groups()):
            if plan.bounded[idx].any():
                accessor.bound(plan.low[idx], plan.high[idx])
            fixed = plan.fixed[idx]
            accessor.raw.requires_grad_(not fixed.all())
            if fixed.any() and not fixed.all():
                keep = torch.as_tensor(~fixed, dtype=torch.float64, device=self._Xt.device).reshape(accessor.raw.shape)
                accessor.raw.register_hook(lambda grad, keep=keep: grad * keep)
        self.likelihood.raw_noise.requires_grad_(not plan.fixed[-1])

    def _set_theta(self, params):
        """Set a full parameter vector (kernel log-hyperparameters, log noise std; standardised);
        bounded entries are kept 1e-6 of their log range inside their bounds (Interval's transform is open)."""
        torch, _ = _modules()
        margin = 1e-6 * (self.plan.high - self.plan.low)
        params = np.where(self.plan.bounded, np.clip(params, self.plan.low + margin, self.plan.high - margin), params)
        for accessor, idx in zip(self._accessors, self._slot_groups()):
            accessor.set(params[idx])
        self.likelihood.noise = torch.tensor(math.exp(2.0 * params[-1]), dtype=torch.float64, device=self._Xt.device)

    def _get_theta(self):
        """The full parameter vector now set on the model."""
        params = np.empty(len(self.kernel.layout(self.d)) + 1)
        for accessor, idx in zip(self._accessors, self._slot_groups()):
            params[idx] = accessor.get()
        params[-1] = 0.5 * math.log(float(self.likelihood.noise.detach().reshape(-1)[0]))
        return params

    def fit(self, X, y, restarts=3, seed=0, hyperparameters=None):
        """As `ExactGP.fit`: L-BFGS or Adam on the exact marginal likelihood from the same starts, or condition only."""
        torch, _ = _modules()
        self._set_data(X, y)
        self._Xt = torch.as_tensor(self._Xs, dtype=torch.float64, device=self.device)
        self._yt = torch.as_tensor(self._ys, dtype=torch.float64, device=self.device)
        self.model, self.likelihood, self._accessors = self._build()
        self._constrain()
        if hyperparameters is not None:
            self._set_theta(self._standardised(hyperparameters))
            self.optimisation = None
        else:
            self._train(restarts, seed)
        self._finish()
        return self

    def _loss(self, mll):
        output = self.model(self._Xt)
        return -mll(output, self._yt)

    def _train(self, restarts, seed):
        torch, gpytorch = _modules()
        mll = gpytorch.mlls.ExactMarginalLogLikelihood(self.likelihood, self.model)
        n = len(self._yt)
        best, history = None, []
        with self._settings():
            for start in self._starts(restarts, seed):
                self._set_theta(start)
                self.model.train()
                self.likelihood.train()
                params = [p for p in self.model.parameters() if p.requires_grad]
                evaluations = 0
                try:
                    if params:
                        evaluations = self._run_optimizer(params, mll)
                except Exception as e:  # a start that wanders into a non-PD region: try the next
                    if "positive definite" not in str(e) and "cholesky" not in str(e).lower():
                        raise
                    continue
                with torch.no_grad():
                    final = float(self._exact_negative_lml())
                end = self._get_theta()
                history.append(self._record(start, end, -final - n * math.log(self.y_std), evaluations))
                if np.isfinite(final) and (best is None or final < best[0]):
                    best = (final, end)
        self.optimisation = history
        if best is None:
            raise DlsuiteError("the GPyTorch fit failed at every start (non-finite marginal likelihood)")
        self._set_theta(best[1])

    def _run_optimizer(self, params, mll):
        torch, _ = _modules()

        def closure():
            optimiser.zero_grad()
            loss = self._loss(mll)
            loss.backward()
            return loss

        if self.optimizer == "lbfgs":
            optimiser = torch.optim.LBFGS(params, lr=1.0, max_iter=self.iterations, line_search_fn="strong_wolfe",
                                          tolerance_grad=1e-7, tolerance_change=1e-12)
            optimiser.step(closure)
            return int(optimiser.state[optimiser._params[0]].get("func_evals", 0))
        optimiser = torch.optim.Adam(params, lr=self.lr)
        for _ in range(self.iterations):
            optimiser.step(closure)
        return self.iterations

    def _exact_negative_lml(self):
        """-log p(y_standardised) by Cholesky (whatever `cholesky` says), in nats."""
        torch, gpytorch = _modules()
        self.model.train()
        self.likelihood.train()
        mll = gpytorch.mlls.ExactMarginalLogLikelihood(self.likelihood, self.model)
        with gpytorch.settings.max_cholesky_size(10 ** 9), torch.no_grad():
            return -mll(self.model(self._Xt), self._yt).item() * len(self._yt)

    def _finish(self):
        n = len(self._yt)
        self._lml = -self._exact_negative_lml() - n * math.log(self.y_std)
        params = self._get_theta()
        self._theta = params[:-1]
        self._noise_var = math.exp(2.0 * params[-1])
        self.model.eval()
        self.likelihood.eval()
        self._fitted = True

    def _distribution(self, X_new, include_noise):
        torch, gpytorch = _modules()
        Xs = torch.as_tensor((as_inputs(X_new, self.d) - self.x_mean) / self.x_std, dtype=torch.float64,
                             device=self.device)
        with warnings.catch_warnings():  # predicting at the training inputs is intended (fit.png)
            warnings.simplefilter("ignore", gpytorch.utils.warnings.GPInputWarning)
            f = self.model(Xs)
        return self.likelihood(f) if include_noise else f

    def predict(self, X_new, include_noise=False, batch_size=2048):
        """As `ExactGP.predict`: mean and std (m,) in y's units, `batch_size` points at a time."""
        torch, _ = _modules()
        self._check_fitted()
        X_new = as_inputs(X_new, self.d)
        means, stds = [], []
        with torch.no_grad(), self._settings():
            for start in range(0, len(X_new), batch_size):
                dist = self._distribution(X_new[start:start + batch_size], include_noise)
                means.append(dist.mean.cpu().numpy())
                stds.append(dist.variance.clamp_min(0.0).sqrt().cpu().numpy())
        return np.concatenate(means) * self.y_std + self.y_mean, np.concatenate(stds) * self.y_std

    def posterior(self, X_new, include_noise=False):
        """As `ExactGP.posterior`: mean (m,) and covariance (m, m) in y's units."""
        torch, _ = _modules()
        self._check_fitted()
        with torch.no_grad(), self._settings():
            dist = self._distribution(X_new, include_noise)
            return (dist.mean.cpu().numpy() * self.y_std + self.y_mean,
                    dist.covariance_matrix.cpu().numpy() * self.y_std ** 2)
