"""Exact GP fit and predict: ours (NumPy/SciPy) against scikit-learn's and GPyTorch's.

    python benchmarks/gp_exact.py [--n 500 2000 5000] [--timeout 300]

Same data for every library (y = sin x + 0.5 sin 4x + N(0, 0.25^2) at n uniform x on
[0, 10], seeded), same model (one RBF kernel with a signal std, Gaussian noise, targets
standardised), one optimisation from the same start (lengthscale 0.5, signal std 1, noise std
0.1 in standardised units), then mean and std at 1,000 new points. Each (library, n) runs once
in its own process, so `peak_rss_mb` is that library's own peak (`import_rss_mb`: after the
imports, before any data). `log_marginal_likelihood` is log p(y) in y's units for all,
computed exactly (GPyTorch's by Cholesky after training), so the fits are compared at their
optimum. Runs:

- `ours`: `gp_hpo.gp.ExactGP` (L-BFGS-B on the analytic gradient, float64 LAPACK);
- `sklearn`: `GaussianProcessRegressor(C * RBF + WhiteKernel, normalize_y=True)`, its L-BFGS-B;
- `gpytorch_adam`: GPyTorch's recipe (the book's and the tutorial's): Adam at lr 0.1 for 50
  steps, GPyTorch's default settings (conjugate gradients and Lanczos above 800 points), float64;
- `gpytorch_lbfgs`: GPyTorch with torch's L-BFGS and Cholesky at every size (reaches the optimum);
- `gpytorch_adam_cuda`: `gpytorch_adam` on a CUDA GPU, when there is one (skipped otherwise).

A run that exceeds `--timeout` seconds is reported with `"timed_out": true`. One JSON line per
(library, n), then one line per n with the time ratios against ours.
"""
import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness import machine, peak_rss_mb  # noqa: E402

LIBRARIES = ("ours", "sklearn", "gpytorch_adam", "gpytorch_lbfgs", "gpytorch_adam_cuda")
START = {"lengthscale": 0.5, "signal_std": 1.0, "noise_std": 0.1}  # standardised units, ExactGP's defaults


def data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(0, 10, n))
    y = np.sin(x) + 0.5 * np.sin(4 * x) + 0.25 * rng.standard_normal(n)
    return x[:, None], y, np.linspace(0, 10, 1000)[:, None]


def run_ours(X, y, X_new):
    from gp_hpo.gp import ExactGP

    tic = time.perf_counter()
    gp = ExactGP("rbf").fit(X, y, restarts=0)
    fit_s = time.perf_counter() - tic
    tic = time.perf_counter()
    gp.predict(X_new)
    return fit_s, time.perf_counter() - tic, gp.log_marginal_likelihood(), gp.hyperparameters(), \
        gp.optimisation[0]["evaluations"]


def run_sklearn(X, y, X_new):
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    kernel = ConstantKernel(START["signal_std"] ** 2, (1e-6, 1e4)) * RBF(START["lengthscale"] * X.std(), (1e-3, 1e3)) \
        + WhiteKernel(START["noise_std"] ** 2, (1e-8, 1e2))
    gpr = GaussianProcessRegressor(kernel, alpha=0.0, normalize_y=True, n_restarts_optimizer=0)
    tic = time.perf_counter()
    gpr.fit(X, y)
    fit_s = time.perf_counter() - tic
    tic = time.perf_counter()
    gpr.predict(X_new, return_std=True)
    predict_s = time.perf_counter() - tic
    k = gpr.kernel_
    y_std = y.std()
    hyper = {"signal_std": math.sqrt(k.k1.k1.constant_value) * y_std, "lengthscale": float(k.k1.k2.length_scale),
             "noise_std": math.sqrt(k.k2.noise_level) * y_std}
    lml = gpr.log_marginal_likelihood_value_ - len(y) * math.log(y_std)
    return fit_s, predict_s, lml, hyper, None


def run_gpytorch(X, y, X_new, optimizer, device=None):
    from gp_hpo.gp_gpytorch import GPyTorchGP

    if optimizer == "adam":
        gp = GPyTorchGP("rbf", optimizer="adam", iterations=50, lr=0.1, cholesky=False, device=device)
    else:
        gp = GPyTorchGP("rbf", optimizer="lbfgs", iterations=100, cholesky=True, device=device)
    tic = time.perf_counter()
    gp.fit(X, y, restarts=0)  # includes one exact Cholesky for the reported log likelihood
    fit_s = time.perf_counter() - tic
    tic = time.perf_counter()
    gp.predict(X_new)
    return fit_s, time.perf_counter() - tic, gp.log_marginal_likelihood(), gp.hyperparameters(), None


def one(library, n):
    """Measure one (library, n) in this process and print its JSON line."""
    if library == "sklearn":
        import sklearn.gaussian_process  # noqa: F401
    elif library.startswith("gpytorch"):
        import gpytorch  # noqa: F401
        import torch
    import gp_hpo.gp  # noqa: F401
    import_rss = peak_rss_mb()
    X, y, X_new = data(n)
    if library == "ours":
        result = run_ours(X, y, X_new)
    elif library == "sklearn":
        result = run_sklearn(X, y, X_new)
    else:
        torch.set_num_threads(len(__import__("os").sched_getaffinity(0)))
        device = "cuda" if library.endswith("cuda") else None
        if device and not torch.cuda.is_available():
            print(json.dumps({"what": "gp_exact", "library": library, "n": n, "skipped": "no CUDA device"}))
            return
        result = run_gpytorch(X, y, X_new, library.split("_")[1], device)
    fit_s, predict_s, lml, hyper, evaluations = result
    print(json.dumps({"what": "gp_exact", "library": library, "n": n, "fit_seconds": round(fit_s, 3),
                      "predict_seconds": round(predict_s, 3), "log_marginal_likelihood": round(lml, 3),
                      **{k: round(v, 4) for k, v in hyper.items()},
                      **({"evaluations": evaluations} if evaluations else {}),
                      "peak_rss_mb": peak_rss_mb(), "import_rss_mb": import_rss, "machine": machine()}), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[500, 2000, 5000])
    parser.add_argument("--libraries", nargs="+", choices=LIBRARIES, default=list(LIBRARIES))
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per (library, n) run")
    parser.add_argument("--one", nargs=2, metavar=("LIBRARY", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        return one(args.one[0], int(args.one[1]))
    for n in args.n:
        lines = {}
        for library in args.libraries:
            try:
                done = subprocess.run([sys.executable, __file__, "--one", library, str(n)], capture_output=True,
                                      text=True, timeout=args.timeout, cwd=ROOT)
            except subprocess.TimeoutExpired:
                line = {"what": "gp_exact", "library": library, "n": n, "timed_out": True, "timeout_s": args.timeout}
                print(json.dumps(line), flush=True)
                continue
            json_lines = [s for s in done.stdout.splitlines() if s.startswith("{")]
            if json_lines and "skipped" in json_lines[-1]:
                print(json_lines[-1], flush=True)
                continue
            if done.returncode != 0 or not json_lines:
                print(json.dumps({"what": "gp_exact", "library": library, "n": n,
                                  "error": (done.stderr.strip().splitlines() or ["?"])[-1]}), flush=True)
                continue
            print(json_lines[-1], flush=True)
            lines[library] = json.loads(json_lines[-1])
        if "ours" in lines:
            ours = lines["ours"]
            print(json.dumps({"what": "gp_exact_ratio", "n": n, **{
                f"{lib}_fit_over_ours": round(line["fit_seconds"] / ours["fit_seconds"], 2)
                for lib, line in lines.items() if lib != "ours"}, **{
                f"{lib}_lml_minus_ours": round(line["log_marginal_likelihood"] - ours["log_marginal_likelihood"], 3)
                for lib, line in lines.items() if lib != "ours"}}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
