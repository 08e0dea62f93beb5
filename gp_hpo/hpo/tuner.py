"""The tuner: worker processes running trials of one Optuna study, and the study's results.

A study lives in an Optuna storage: by default a journal file (`journal.log` in the
study directory, `optuna.storages.JournalStorage`), or any URL Optuna accepts
(`sqlite:///f.db`, `postgresql://user@host/db`). Its user attribute `settings` holds
what every worker needs (objective, space, searcher, scheduler, resources, seed), so a
worker anywhere can join with only the storage and the study name.

Each worker loops: fail and retry trials whose heartbeat went stale, ask the study for
a trial (a WAITING one first: retries, successive-halving slots), let the scheduler
choose its configuration and epochs (hyperparameters come from our searcher, plugged
in as the study's sampler), run the objective with a `report` that stores each
epoch's error in the storage at once and consults the pruner, and tell the study how
the trial ended. Optuna's journal storage has no heartbeat of its own, so the worker
keeps one for every storage: a thread refreshes the running trial's system attribute
`heartbeat`; a RUNNING trial whose heartbeat is older than `grace_seconds` is marked
FAIL and queued again with Optuna's `RetryHeartbeatStaleTrialCallback` (same
parameters, system attribute `failed_trial`). A trial that raises is FAIL with its
error line in the user attribute `error`; the study goes on.

The budget `trials` counts first attempts (retries run on top, never twice), and the
study is done when that many have finished. A trial asked beyond the budget (several
workers asking at once) is closed at once as FAIL with the user attribute `surplus`
and left out of every count.
"""
import csv
import dataclasses
import math
import multiprocessing
import os
import socket
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna

from common.errors import DlsuiteError, UsageError
from gp_hpo.hpo.objectives import load_objective
from gp_hpo.hpo.schedulers import make_scheduler
from gp_hpo.hpo.searchers import make_sampler, trial_error
from gp_hpo.hpo.space import ConfigSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)
TrialState = optuna.trial.TrialState
JOURNAL = "journal.log"
# settings a joining worker must share with the study (the others are per-worker)
STUDY_KEYS = ("objective", "space", "searcher", "scheduler", "min_epochs", "max_epochs", "eta", "seed")


@dataclass
class StudySettings:
    """Everything a worker needs; stored in the study as the user attribute `settings`."""

    objective: str
    space: dict
    storage: str
    study: str = "hpo"
    searcher: str = "random"
    scheduler: str = "fifo"
    trials: int = 20
    min_epochs: int = 1
    max_epochs: int = 10
    eta: int = 3
    seed: int = 0
    initial_random: int = 5
    deadline: float = math.inf
    heartbeat_seconds: float = 2.0
    grace_seconds: float = 20.0
    max_retry: int = 2

    def to_dict(self):
        return {k: (None if v == math.inf else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d):
        d = dict(d)
        d["deadline"] = math.inf if d.get("deadline") is None else d["deadline"]
        return cls(**{k: v for k, v in d.items() if k in {f.name for f in dataclasses.fields(cls)}})


class NonFiniteError(DlsuiteError):
    """An objective reported NaN or infinity."""


def make_storage(url):
    """An Optuna storage: a URL with `://` is a database (RDBStorage), anything else a journal file path."""
    try:
        if "://" in url:
            kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
        Path(url).parent.mkdir(parents=True, exist_ok=True)
        journal = optuna.storages.journal
        return journal.JournalStorage(journal.JournalFileBackend(str(url)))
    except (ImportError, ModuleNotFoundError) as e:
        raise DlsuiteError(f"--storage {url}: the database driver is missing ({e}); install it, "
                           "e.g. pip install \"psycopg[binary]\" for postgresql://") from None
    except Exception as e:  # noqa: BLE001 - connection failures come in many classes
        raise DlsuiteError(f"--storage {url}: cannot open ({type(e).__name__}: {str(e).splitlines()[0]})") from None


def open_study(settings, create=True):
    """Load the study (creating it with `settings` when `create`); a joiner's settings must match."""
    storage = make_storage(settings.storage)
    names = {s.study_name for s in optuna.study.get_all_study_summaries(storage, include_best_trial=False)}
    if settings.study not in names:
        if not create:
            raise UsageError(f"no study {settings.study!r} in {settings.storage}")
        study = optuna.create_study(storage=storage, study_name=settings.study, direction="minimize",
                                    load_if_exists=True)
        if "settings" not in study.user_attrs:
            study.set_user_attr("settings", settings.to_dict())
            study.set_user_attr("t0", time.time())
    study = optuna.load_study(study_name=settings.study, storage=storage)
    saved = study.user_attrs.get("settings")
    if saved is None:
        raise UsageError(f"study {settings.study!r} in {settings.storage} was not made by gp_hpo.hpo (no settings)")
    differ = [k for k in STUDY_KEYS if saved.get(k) != settings.to_dict().get(k)]
    if differ:
        raise UsageError(f"study {settings.study!r} already exists with other settings ({', '.join(differ)}); "
                         f"use the same flags, another --study, or --resume to take its settings")
    return study


def trial_seed(seed, number):
    """A trial's seed: a 31-bit draw from SeedSequence([seed, number]) (no overlap between trials)."""
    return int(np.random.SeedSequence([int(seed), int(number)]).generate_state(1)[0] >> 1)


class _Heartbeat:
    """Refresh the trial's `heartbeat` system attribute every `interval` seconds in a thread."""

    def __init__(self, storage, trial_id, interval):
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self):
        while True:
            try:
                self.storage.set_trial_system_attr(self.trial_id, "heartbeat", time.time())
            except Exception:  # noqa: BLE001 - the trial finished meanwhile
                return
            if self.stop.wait(self.interval):
                return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def fail_stale_trials(study, grace_seconds, max_retry):
    """Mark RUNNING trials whose heartbeat is older than `grace_seconds` as FAIL and queue their retry.

    Returns the numbers of the trials this call failed (another worker may fail some first).
    """
    now, failed = time.time(), []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        beat = t.system_attrs.get("heartbeat", t.datetime_start.timestamp() if t.datetime_start else now)
        if now - beat <= grace_seconds:
            continue
        try:
            study._storage.set_trial_user_attr(t._trial_id, "error", f"heartbeat stale for {now - beat:.0f} s "
                                                                       "(worker killed?)")
            if not study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
                continue
        except Exception:  # noqa: BLE001 - finished or failed by another worker meanwhile
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry)
        retry(study, study._storage.get_trial(t._trial_id))
        failed.append(t.number)
    return failed


def _counted(t):
    return "failed_trial" not in t.system_attrs and not t.user_attrs.get("surplus")


def budget_state(study, limit_number=None):
    """(first attempts started, WAITING retries, RUNNING trials) among trials numbered below `limit_number`."""
    started = retries = running = 0
    for t in study.get_trials(deepcopy=False):
        if limit_number is not None and t.number >= limit_number:
            continue
        if t.state == TrialState.WAITING:
            retries += "failed_trial" in t.system_attrs
        elif _counted(t):
            started += 1
        running += t.state == TrialState.RUNNING
    return started, retries, running


def run_trial(study, trial, scheduler, objective, settings, worker):
    """Run one asked trial to its end (COMPLETE, PRUNED or FAIL) and return its state.

    The heartbeat runs from the start, so a successive-halving slot waiting for its rung
    is not taken for a dead one.
    """
    with _Heartbeat(study._storage, trial._trial_id, settings.heartbeat_seconds):
        return _run_trial(study, trial, scheduler, objective, settings, worker)


def _run_trial(study, trial, scheduler, objective, settings, worker):
    trial.set_user_attr("worker", worker)
    config = scheduler.suggest(study, trial)
    if config is None:
        trial.set_user_attr("skipped", True)
        study.tell(trial, state=TrialState.PRUNED)
        return TrialState.PRUNED
    seed = trial.user_attrs.get("seed")
    if seed is None:
        seed = trial_seed(settings.seed, trial.number)
        trial.set_user_attr("seed", seed)
    config["seed"] = seed
    last = {"epoch": 0, "error": None, "stopped": None}

    def report(epoch, error):
        error = float(error)
        if not math.isfinite(error):
            raise NonFiniteError(f"reported a non-finite error ({error}) at epoch {epoch}")
        trial.report(error, int(epoch))
        last.update(epoch=int(epoch), error=error)
        if time.time() > settings.deadline:
            last["stopped"] = "deadline"
        elif trial.should_prune():
            last["stopped"] = "pruned"
        return last["stopped"] is None

    try:
        returned = objective(config, report)
        if last["error"] is None and returned is not None:
            returned = float(returned)
            if not math.isfinite(returned):
                raise NonFiniteError(f"returned a non-finite error ({returned})")
            last["error"] = returned
        if last["error"] is None:
            raise DlsuiteError("the objective neither reported nor returned an error")
    except Exception as e:  # noqa: BLE001 - a failing trial must not stop the study
        message = (f"{type(e).__name__}: {e}".splitlines() or [""])[0][:500]
        trial.set_user_attr("error", message)
        trial.set_user_attr("epochs", last["epoch"])
        study.tell(trial, state=TrialState.FAIL)
        print(f"gp_hpo.hpo: trial {trial.number} failed: {message}", file=sys.stderr, flush=True)
        return TrialState.FAIL
    trial.set_user_attr("epochs", last["epoch"])
    if last["stopped"] is not None:
        trial.set_user_attr("stopped", last["stopped"])
        study.tell(trial, state=TrialState.PRUNED)
        return TrialState.PRUNED
    study.tell(trial, last["error"])
    scheduler.update(study, trial, last["error"])
    return TrialState.COMPLETE


def work(settings, worker=None, poll_seconds=0.2):
    """One worker: run trials of the study until `settings.trials` first attempts finished (or the deadline)."""
    if isinstance(settings, dict):
        settings = StudySettings.from_dict(settings)
    worker = worker or f"{socket.gethostname()}:{os.getpid()}"
    space = ConfigSpace(settings.space)
    objective = load_objective(settings.objective)
    scheduler = make_scheduler(settings.scheduler, space, settings.min_epochs, settings.max_epochs, settings.eta)
    study = open_study(settings, create=False)
    study.sampler = make_sampler(settings.searcher, space, settings.seed, settings.initial_random)
    study.pruner = scheduler.pruner()
    ran = 0
    while time.time() < settings.deadline:
        fail_stale_trials(study, settings.grace_seconds, settings.max_retry)
        started, retries, running = budget_state(study)
        if started >= settings.trials and not retries:
            if not running:
                break
            time.sleep(poll_seconds)  # wait: a running trial may still go stale and need a retry
            continue
        trial = study.ask()
        frozen = study._storage.get_trial(trial._trial_id)
        if _counted(frozen) and budget_state(study, trial.number)[0] >= settings.trials:
            trial.set_user_attr("surplus", True)
            study.tell(trial, state=TrialState.FAIL)
            continue
        run_trial(study, trial, scheduler, objective, settings, worker)
        ran += 1
    return ran


def _worker_process(settings, worker):
    try:
        work(settings, worker)
    except DlsuiteError as e:
        print(f"gp_hpo.hpo worker {worker}: error: {e}", file=sys.stderr, flush=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


def run_workers(settings, workers, in_process=True):
    """Run `workers` workers on the study (one in this process when `in_process` and workers == 1).

    Worker processes are started with the spawn method (TensorFlow does not survive a fork).
    Returns the exit codes of the processes (empty when run in process).
    """
    if workers == 1 and in_process:
        work(settings, "w0")
        return []
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker_process, args=(settings.to_dict(), f"w{i}")) for i in range(workers)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        raise
    return [p.exitcode for p in procs]


# ---------------------------------------------------------------- results

def trial_records(study):
    """One dict per trial (surplus and WAITING ones left out), by number; times in seconds from the study start."""
    t0 = study.user_attrs.get("t0", 0.0)
    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    rows = []
    for t in trials:
        if t.user_attrs.get("surplus") or t.state == TrialState.WAITING:
            continue
        state = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed",
                 TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}[t.state]
        if t.user_attrs.get("skipped"):
            state = "skipped"
        elif state == "failed" and t.number in retried:
            state = "retried"
        error = trial_error(t) if state in ("complete", "pruned") else None
        rows.append({
            "trial": t.number, "state": state, "worker": t.user_attrs.get("worker", ""),
            "seed": t.user_attrs.get("seed", ""),
            "epochs": t.user_attrs.get("epochs", len(t.intermediate_values)),
            "error": error,
            "start_s": round(t.datetime_start.timestamp() - t0, 3) if t.datetime_start else None,
            "end_s": round(t.datetime_complete.timestamp() - t0, 3) if t.datetime_complete else None,
            "promoted_from": t.user_attrs.get("promoted_from", ""),
            "retry_of": t.system_attrs.get("failed_trial", ""),
            "message": t.user_attrs.get("error", t.user_attrs.get("stopped", "")),
            **{f"param_{k}": v for k, v in t.params.items()},
        })
    return rows


def incumbent_trajectory(rows):
    """(wall seconds, cumulative epochs, best error so far) at each trial end with an error, in end order."""
    finished = sorted((r for r in rows if r["end_s"] is not None), key=lambda r: r["end_s"])
    wall, epochs, best, cum, b = [], [], [], 0, math.inf
    for r in finished:
        cum += r["epochs"] or 0
        if r["error"] is not None:
            b = min(b, r["error"])
        if math.isfinite(b):
            wall.append(r["end_s"])
            epochs.append(cum)
            best.append(b)
    return np.array(wall), np.array(epochs), np.array(best)


def summarize(study, rows):
    """The JSON summary: best_config, best_error, total_epochs, wall_seconds, trials, failed_trials, ..."""
    scored = [r for r in rows if r["error"] is not None]
    best = min(scored, key=lambda r: (r["error"], r["trial"])) if scored else None
    ends = [r["end_s"] for r in rows if r["end_s"] is not None]
    return {
        "best_config": {k[6:]: v for k, v in best.items() if k.startswith("param_")} if best else None,
        "best_error": best["error"] if best else None,
        "best_trial": best["trial"] if best else None,
        "total_epochs": int(sum(r["epochs"] or 0 for r in rows)),
        "wall_seconds": round(max(ends), 3) if ends else 0.0,
        "trials": sum(r["state"] in ("complete", "pruned", "failed") for r in rows),
        "complete_trials": sum(r["state"] == "complete" for r in rows),
        "pruned_trials": sum(r["state"] == "pruned" for r in rows),
        "failed_trials": sum(r["state"] == "failed" for r in rows),
        "retried_trials": sum(r["state"] == "retried" for r in rows),
    }


def write_results(study, study_dir):
    """Write results.csv and incumbent.png into `study_dir`; return the summary dict."""
    rows = trial_records(study)
    study_dir = Path(study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for r in rows for k in r)) or ["trial"]
    tmp = study_dir / ".results.csv.tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, study_dir / "results.csv")
    settings = study.user_attrs.get("settings", {})
    title = (f"{settings.get('searcher')} + {settings.get('scheduler')} on "
             f"{str(settings.get('objective', '')).rsplit(':', 1)[-1]} (study {study.study_name})")
    plot_incumbent(rows, study_dir / "incumbent.png", title=title)
    return summarize(study, rows)


def plot_incumbent(rows, path, title=""):
    """Best validation error so far against wall time and against cumulative epochs (two panels)."""
    from common.plots import plt, save_figure

    wall, epochs, best = incumbent_trajectory(rows)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, x, label in ((axes[0], wall, "wall time (s)"), (axes[1], epochs, "cumulative epochs")):
        if len(best):
            ax.step(x, best, where="post", marker=".")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("best validation error so far")
    fig.suptitle(title)
    return save_figure(fig, path)


class Tuner:
    """The book's Tuner: runs the loop and records every result (wall time, worker, epochs used).

    `Tuner(settings).run(workers)` creates or joins the study, runs the workers, and
    returns the summary; `records` then holds one dict per trial (see `trial_records`).
    """

    def __init__(self, settings):
        self.settings = settings
        self.records = []

    def run(self, workers=1, study_dir=None, in_process=True):
        """Run the workers; returns the summary (results.csv and incumbent.png written into
        `study_dir` when given, also when Ctrl-C stops the run)."""
        study = open_study(self.settings, create=True)
        s = self.settings
        make_scheduler(s.scheduler, ConfigSpace(s.space), s.min_epochs, s.max_epochs, s.eta).prime(study)
        try:
            run_workers(self.settings, workers, in_process)
        finally:
            self.records = trial_records(study)
            if study_dir is not None:
                summary = write_results(study, study_dir)
        return summary if study_dir is not None else summarize(study, self.records)
