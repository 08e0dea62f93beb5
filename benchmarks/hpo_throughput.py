"""Tuner overhead per trial, and trials/s with 1 and 2 local workers on a journal file and on SQLite.

    python -m benchmarks.hpo_throughput [--trials 200] [--cpu-trials 16]

- `overhead`: one in-process worker running a no-op objective (one report) for
  `--trials` trials on each storage; the seconds per trial are the tuner's cost
  (sampler, heartbeat thread, storage writes). The peer is Optuna's own
  `study.optimize` loop with the same no-op objective and RandomSampler on the same
  storage, as a ratio in the same run.
- `workers`: 1 and 2 spawned worker processes on the same storage; `trials_per_s`
  counts from the first trial's start to the last trial's end (worker start-up, about
  5 s for the TensorFlow import, is reported apart as `startup_s`). With the no-op
  objective this measures storage contention; with `--cpu-trials` trials of the
  demo objective (a Keras MLP, 4 epochs) it measures parallel speed-up on this machine.
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import optuna

from benchmarks.harness import report
from gp_hpo.hpo.command import resolve_space
from gp_hpo.hpo.tuner import JOURNAL, StudySettings, Tuner, make_storage, open_study, run_workers, trial_records

SPACE = {"x": {"type": "uniform", "low": 0.0, "high": 1.0}}
NOOP = "benchmarks.hpo_throughput:noop"  # importable by spawned workers (not __main__)


def noop(config, report):
    """One report of error x: the cheapest possible trial."""
    report(1, config["x"])


noop.space = SPACE


def storages(tmp):
    return {"journal": str(Path(tmp) / JOURNAL), "sqlite": f"sqlite:///{tmp}/study.db"}


def overhead(trials):
    for kind in ("journal", "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            settings = StudySettings(objective=NOOP, space=SPACE, storage=storages(tmp)[kind],
                                     trials=trials, max_epochs=1)
            tic = time.perf_counter()
            Tuner(settings).run(1)
            ours = time.perf_counter() - tic
        with tempfile.TemporaryDirectory() as tmp:
            study = optuna.create_study(storage=make_storage(storages(tmp)[kind]),
                                        sampler=optuna.samplers.RandomSampler(seed=0))

            def plain(trial):
                x = trial.suggest_float("x", 0.0, 1.0)
                trial.report(x, 1)
                trial.should_prune()
                return x

            tic = time.perf_counter()
            study.optimize(plain, n_trials=trials)
            peer = time.perf_counter() - tic
        report(f"hpo tuner overhead, {kind}", "trials", trials, ours, ms_per_trial=round(1000 * ours / trials, 2),
               optuna_optimize_ms_per_trial=round(1000 * peer / trials, 2), ratio_to_optuna=round(ours / peer, 2))


def throughput(kind, workers, trials, objective, max_epochs):
    with tempfile.TemporaryDirectory() as tmp:
        settings = StudySettings(objective=objective, space=resolve_space(objective, ""),
                                 storage=storages(tmp)[kind], trials=trials, max_epochs=max_epochs)
        study = open_study(settings, create=True)
        tic = time.time()
        run_workers(settings, workers, in_process=False)
        wall = time.time() - tic
        rows = trial_records(study)
        t0 = study.user_attrs["t0"]
        first, last = min(r["start_s"] for r in rows), max(r["end_s"] for r in rows)
        return report(f"hpo {workers} worker(s), {kind}, {objective.rsplit(':', 1)[-1]}", "trials", len(rows),
                      last - first, workers=workers, storage=kind, wall_s=round(wall, 2),
                      startup_s=round(t0 + first - tic, 2), trials_per_s=round(len(rows) / (last - first), 3),
                      workers_used=len({r["worker"] for r in rows}))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=200, help="no-op trials per measurement")
    p.add_argument("--cpu-trials", type=int, default=16, help="demo-objective trials per measurement (0: skip)")
    args = p.parse_args(argv)
    overhead(args.trials)
    for kind in ("journal", "sqlite"):
        one = throughput(kind, 1, args.trials, NOOP, 1)
        two = throughput(kind, 2, args.trials, NOOP, 1)
        print(json.dumps({"what": f"hpo 2 vs 1 workers, {kind}, noop",
                          "speedup": round(two["trials_per_s"] / one["trials_per_s"], 2)}), flush=True)
    if args.cpu_trials:
        one = throughput("journal", 1, args.cpu_trials, "gp_hpo.hpo.objectives:demo", 4)
        two = throughput("journal", 2, args.cpu_trials, "gp_hpo.hpo.objectives:demo", 4)
        print(json.dumps({"what": "hpo 2 vs 1 workers, journal, demo (async random search)",
                          "speedup": round(two["trials_per_s"] / one["trials_per_s"], 2),
                          "speedup_with_startup": round(one["wall_s"] / two["wall_s"], 2)}), flush=True)


if __name__ == "__main__":
    main()
