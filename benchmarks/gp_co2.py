"""A composite-kernel GP on the Mauna Loa CO2 series: ours against scikit-learn's gallery fit, and GPyTorch.

    python benchmarks/gp_co2.py [--seeds 5] [--cut 1992] [--skip gpytorch]
    python benchmarks/gp_co2.py --write-csv DIR     # co2_train.csv, co2_test.csv for `python -m gp_hpo.gp`

Data: `statsmodels.datasets.co2` (weekly Mauna Loa means, 1958-2001; statsmodels comes with the
`bench` extra), resampled to monthly means (months without data dropped), x = the decimal year of
each month's middle (year + (month - 0.5) / 12). Training: the months before `--cut` (1992: 401
months from March 1958); test: the ten years after (120 months). Targets standardised inside
every library (`normalize_y=True`), log marginal likelihoods reported as log p(y) in ppm.

Runs (one JSON line each, then one line of ratios against scikit-learn):

- `sklearn`: `GaussianProcessRegressor` with the gallery's kernel started where our expression
  starts, `C(1)*RBF(50) + C(1)*RBF(100)*ExpSineSquared(1, 1) + C(1)*RQ(1, 1) + WhiteKernel(0.01)`
  (constants and noise level in standardised units), `normalize_y=True`, 4 restarts (its random
  restarts draw from its bounds), `random_state` = seed 0;
- `ours_gallery`: `gp_hpo.gp.ExactGP` with `rbf(lengthscale=50) + rbf(lengthscale=100) *
  periodic(period=1) + rq(lengthscale=1, alpha=1) + white`, 4 restarts, seed 0;
- `ours_plain`: `rbf + rbf * periodic + rq` with no values (the periodogram and data-based
  starts), the command's default 3 restarts, seeds 0..`--seeds`-1;
- `gpytorch_gallery`: `gp_hpo.gp_gpytorch.GPyTorchGP` (torch L-BFGS, Cholesky) on the gallery
  expression, 4 restarts, seed 0.

Each line: fit seconds, log marginal likelihood, test rmse, nlpd and 95% coverage (predictive
band with noise), the fitted period, and the machine. One process, runs in sequence.
"""
import argparse
import csv
import json
import math
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness import machine, peak_rss_mb  # noqa: E402

GALLERY = "rbf(lengthscale=50) + rbf(lengthscale=100) * periodic(period=1) + rq(lengthscale=1, alpha=1) + white"
PLAIN = "rbf + rbf * periodic + rq"


def co2_monthly():
    """(x decimal years of month middles, monthly mean ppm) from statsmodels' weekly Mauna Loa series."""
    try:
        from statsmodels.datasets import co2
    except ImportError:
        sys.exit("benchmarks/gp_co2.py needs statsmodels: pip install -e '.[bench]'")
    monthly = co2.load_pandas().data["co2"].resample("MS").mean().dropna()
    x = (monthly.index.year + (monthly.index.month - 0.5) / 12).to_numpy(dtype=float)
    return x, monthly.to_numpy(dtype=float)


def split(cut=1992):
    """(X_train (n, 1), y_train, X_test (m, 1), y_test): months before `cut`, then the ten years after."""
    x, y = co2_monthly()
    train, test = x < cut, (x >= cut) & (x < cut + 10)
    return x[train, None], y[train], x[test, None], y[test]


def write_csv(directory, cut=1992):
    """co2_train.csv and co2_test.csv (columns year, co2) in `directory`; returns their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    X, y, X_test, y_test = split(cut)
    paths = []
    for name, (a, b) in {"co2_train.csv": (X, y), "co2_test.csv": (X_test, y_test)}.items():
        with open(directory / name, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["year", "co2"])
            writer.writerows([f"{u:.6f}", f"{v:.4f}"] for u, v in zip(a[:, 0], b))
        paths.append(directory / name)
    return paths


def scores(y, mean, std):
    from gp_hpo.gp import predictive_metrics

    return {k: round(v, 4) for k, v in predictive_metrics(y, mean, std).items()}


def run_sklearn(data, seed=0, restarts=4):
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, ExpSineSquared, RationalQuadratic, WhiteKernel

    X, y, X_test, y_test = data
    kernel = (ConstantKernel(1.0) * RBF(50.0) + ConstantKernel(1.0) * RBF(100.0) * ExpSineSquared(1.0, 1.0)
              + ConstantKernel(1.0) * RationalQuadratic(1.0, 1.0) + WhiteKernel(0.01))
    gpr = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=restarts, random_state=seed)
    tic = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bound warnings of the random restarts
        gpr.fit(X, y)
    seconds = time.perf_counter() - tic
    mean, std = gpr.predict(X_test, return_std=True)
    lml = gpr.log_marginal_likelihood_value_ - len(y) * math.log(y.std())
    period = next(float(v) for k, v in gpr.kernel_.get_params().items() if k.endswith("__periodicity"))
    return {"library": "sklearn", "kernel": str(gpr.kernel_), "restarts": restarts, "seed": seed,
            "fit_seconds": round(seconds, 3), "log_marginal_likelihood": round(lml, 3), "period": round(period, 4),
            **scores(y_test, mean, std)}


def run_ours(data, expression, seed=0, restarts=4, library="ours", backend="numpy"):
    from gp_hpo.gp import make_gp

    X, y, X_test, y_test = data
    gp = make_gp(expression, backend)
    tic = time.perf_counter()
    gp.fit(X, y, restarts=restarts, seed=seed)
    seconds = time.perf_counter() - tic
    mean, std = gp.predict(X_test, include_noise=True)
    hyper = gp.hyperparameters()
    return {"library": library, "kernel": expression, "restarts": restarts, "seed": seed,
            "fit_seconds": round(seconds, 3), "log_marginal_likelihood": round(gp.log_marginal_likelihood(), 3),
            "period": round(hyper["periodic.period"], 4), **scores(y_test, mean, std),
            "start_lmls": [round(o["lml"], 3) for o in gp.optimisation],
            "hyperparameters": {k: round(v, 5) for k, v in hyper.items()}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds of the plain expression's restarts")
    parser.add_argument("--cut", type=float, default=1992.0, help="first test year (ten test years follow)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["sklearn", "gallery", "plain", "gpytorch"])
    parser.add_argument("--write-csv", metavar="DIR", help="write co2_train.csv and co2_test.csv and stop")
    args = parser.parse_args(argv)
    if args.write_csv:
        for path in write_csv(args.write_csv, args.cut):
            print(path)
        return 0
    data = split(args.cut)
    common = {"what": "gp_co2", "n_train": len(data[1]), "n_test": len(data[3]), "cut": args.cut}
    lines = {}

    def emit(name, line):
        lines[name] = line
        print(json.dumps({**common, **line, "peak_rss_mb": peak_rss_mb(), "machine": machine()}), flush=True)

    if "sklearn" not in args.skip:
        emit("sklearn", run_sklearn(data))
    if "gallery" not in args.skip:
        emit("ours_gallery", run_ours(data, GALLERY, library="ours_gallery"))
    if "plain" not in args.skip:
        for seed in range(args.seeds):
            emit(f"ours_plain_{seed}", run_ours(data, PLAIN, seed=seed, restarts=3, library="ours_plain"))
    if "gpytorch" not in args.skip:
        emit("gpytorch_gallery", run_ours(data, GALLERY, library="gpytorch_gallery", backend="gpytorch"))
    ratio = {"what": "gp_co2_ratio"}
    if "sklearn" in lines and "ours_gallery" in lines:
        sk, ours = lines["sklearn"], lines["ours_gallery"]
        ratio.update({"ours_fit_over_sklearn": round(ours["fit_seconds"] / sk["fit_seconds"], 3),
                      "ours_lml_minus_sklearn": round(ours["log_marginal_likelihood"]
                                                      - sk["log_marginal_likelihood"], 3),
                      "ours_rmse_over_sklearn": round(ours["rmse"] / sk["rmse"], 3),
                      "ours_coverage_over_sklearn": round(ours["coverage_95"] / sk["coverage_95"], 3)})
    plain = [line for name, line in lines.items() if name.startswith("ours_plain")]
    if plain:
        ratio.update({"plain_seeds_within_2pct_of_a_year": sum(abs(p["period"] - 1.0) <= 0.02 for p in plain),
                      "plain_seeds": len(plain), "plain_min_coverage": min(p["coverage_95"] for p in plain)})
    if "gpytorch_gallery" in lines and "ours_gallery" in lines:
        a, b = lines["gpytorch_gallery"]["log_marginal_likelihood"], lines["ours_gallery"]["log_marginal_likelihood"]
        ratio["gpytorch_lml_relative_difference"] = round(abs(a - b) / abs(b), 5)
    print(json.dumps(ratio), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
