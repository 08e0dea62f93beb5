"""HPO quality: our searchers and schedulers against Optuna's on the same objectives and budgets.

Every method is an ordinary study run by `gp_hpo.hpo.tuner` (one worker, journal file),
so ours (`random`, `bo`; `fifo`, `asha`) and Optuna's (`tpe`, `optuna-gp` samplers;
`optuna-asha` = `SuccessiveHalvingPruner`) see the same objective, space, trials,
epochs and seeds. One JSON line per study (best_error, total_epochs, wall_seconds),
then one line per method with the medians over seeds and, for the issue's criteria,
the comparisons against `random/fifo`:

    python -m benchmarks.hpo_compare --objective branin --seeds 5 --trials 20 \
        --methods random/fifo,bo/fifo,tpe/fifo,optuna-gp/fifo,random/asha,random/optuna-asha
    python -m benchmarks.hpo_compare --objective fashion_mnist --data-dir ../shared/data/fashion-mnist \
        --seeds 3 --trials 15 --max-epochs 9 --methods random/fifo,random/asha --lock /tmp/dlsuite-cpu.lock

`--lock FILE` takes an exclusive flock on FILE around each study (not the whole run),
for a shared machine; `--out FILE` appends the lines to FILE as well, and studies
already there (same objective, method, seed, trials, epochs; FIFO studies whatever the
rungs) are not run again.
"""
import argparse
import contextlib
import fcntl
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import machine
from gp_hpo.hpo import objectives
from gp_hpo.hpo.command import resolve_space
from gp_hpo.hpo.tuner import JOURNAL, StudySettings, Tuner


@contextlib.contextmanager
def flocked(path):
    if not path:
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_study(objective, method, seed, trials, max_epochs, min_epochs, eta, initial_random):
    """One single-worker study in a temporary directory; returns its summary."""
    searcher, scheduler = method.split("/")
    path = objective if ":" in objective else f"gp_hpo.hpo.objectives:{objective}"
    with tempfile.TemporaryDirectory(prefix="hpo-compare-") as tmp:
        settings = StudySettings(objective=path, space=resolve_space(path, ""), storage=str(Path(tmp) / JOURNAL),
                                 searcher=searcher, scheduler=scheduler, trials=trials, min_epochs=min_epochs,
                                 max_epochs=max_epochs, eta=eta, seed=seed, initial_random=initial_random)
        return Tuner(settings).run(1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--objective", default="branin", help="shipped objective name or package.module:function")
    p.add_argument("--methods", default="random/fifo,bo/fifo,tpe/fifo,optuna-gp/fifo,random/asha,random/optuna-asha",
                   help="comma-separated searcher/scheduler pairs")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--max-epochs", type=int, default=9)
    p.add_argument("--min-epochs", type=int, default=1)
    p.add_argument("--eta", type=int, default=3)
    p.add_argument("--initial-random", type=int, default=5)
    p.add_argument("--data-dir", help="Fashion-MNIST directory (the fashion_mnist objective)")
    p.add_argument("--lock", help="flock this file around each study (shared machine)")
    p.add_argument("--out", help="also append the JSON lines here; studies already in it are not rerun")
    args = p.parse_args(argv)
    if args.data_dir:
        os.environ[objectives.DATA_DIR_ENV] = str(Path(args.data_dir).resolve())
    key = dict(objective=args.objective, trials=args.trials, max_epochs=args.max_epochs, min_epochs=args.min_epochs,
               eta=args.eta)
    done = []
    if args.out and Path(args.out).exists():
        done = [json.loads(line) for line in Path(args.out).read_text().splitlines() if line.strip()]
        done = [d for d in done if d.get("what") == "hpo_study"]
    # FIFO studies do not depend on the rungs: reuse them across --min-epochs / --eta
    rungless = ("min_epochs", "eta")

    def same_study(d, method, seed):
        fifo = method.endswith("/fifo")
        return (d["method"] == method and d["seed"] == seed
                and all(d.get(k) == v for k, v in key.items() if not (fifo and k in rungless)))

    results = {}
    for method in args.methods.split(","):
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            found = next((d for d in done if same_study(d, method, seed)), None)
            if found is None:
                with flocked(args.lock):
                    tic = time.time()
                    summary = run_study(args.objective, method, seed, args.trials, args.max_epochs,
                                        args.min_epochs, args.eta, args.initial_random)
                found = {"what": "hpo_study", **key, "method": method, "seed": seed,
                         "best_error": summary["best_error"], "total_epochs": summary["total_epochs"],
                         "wall_seconds": round(time.time() - tic, 2), "failed_trials": summary["failed_trials"],
                         "best_config": summary["best_config"], "machine": machine()}
                print(json.dumps(found), flush=True)
                if args.out:
                    with open(args.out, "a") as f:
                        f.write(json.dumps(found) + "\n")
            results.setdefault(method, []).append(found)
    base = results.get("random/fifo")
    for method, rows in results.items():
        line = {"what": "hpo_method", **key, "method": method, "seeds": len(rows),
                "median_best_error": statistics.median(r["best_error"] for r in rows),
                "median_total_epochs": statistics.median(r["total_epochs"] for r in rows),
                "median_wall_seconds": statistics.median(r["wall_seconds"] for r in rows)}
        if base and method != "random/fifo":
            paired = [(r, b) for r in rows for b in base if b["seed"] == r["seed"]]
            line["median_error_minus_random"] = statistics.median(r["best_error"] - b["best_error"] for r, b in paired)
            line["median_epochs_ratio_to_random"] = statistics.median(r["total_epochs"] / b["total_epochs"]
                                                                      for r, b in paired)
            line["beats_random_median"] = line["median_best_error"] < statistics.median(b["best_error"] for b in base)
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
