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
parameters and seed, system attribute `failed_trial`; the failed attempt's error,
traceback and worker are not copied). Ctrl-C marks the running trial FAIL
("interrupted") and queues its retry at once, so a resumed study need not wait for
its heartbeat to go stale. A trial that raises is FAIL with its error line in the
user attribute `error` and its traceback in `traceback` (and in
`STUDY_DIR/errors/trial-N.txt`); the study goes on. Each finished trial prints one
line on stderr: its number, state, error, epochs, configuration, the best error so
far and the trials left.

The budget `trials` counts first attempts (retries run on top, never twice), and the
study is done when that many have finished. A trial asked beyond the budget (several
workers asking at once) is closed at once as FAIL with the user attribute `surplus`
and left out of every count.
"""
import contextlib
import copy
import csv
import dataclasses
import math
import multiprocessing
import os
import socket
import signal
import sys
import threading
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna

from common.errors import DlsuiteError, UsageError
from common.files import atomic_path
from gp_hpo.hpo.objectives import load_objective
from gp_hpo.hpo.schedulers import make_scheduler
from gp_hpo.hpo.searchers import make_sampler, trial_error
from gp_hpo.hpo.space import ConfigSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)
TrialState = optuna.trial.TrialState
JOURNAL = "journal.log"
# settings a joining worker must share with the study (the others are per-worker)
STUDY_KEYS = ("objective", "space", "searcher", "scheduler", "min_epochs", "max_epochs", "eta", "seed")
ERRORS = "errors"  # STUDY_DIR/errors/trial-N.txt: the traceback of each trial that raised
INTERRUPTED = "interrupted (Ctrl-C)"
# user attributes of a failed attempt that its retry must not inherit (the retry keeps `seed` and the
# successive-halving slot attributes)
ATTEMPT_ATTRS = ("error", "traceback", "epochs", "worker")


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
    if "://" not in url and Path(url).is_dir():
        raise UsageError(f"--storage {url} is a folder; name a journal file (or a database URL)")
    existing_journal = "://" not in url and Path(url).is_file()
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
        reason = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"
        if existing_journal:
            raise DlsuiteError(f"{url}: the study journal is damaged ({reason}); restore it from a copy, "
                               "or start a new study with another --study-dir") from None
        raise DlsuiteError(f"--storage {url}: cannot open ({reason})") from None


def find_study(settings):
    """The existing study `settings.study` in `settings.storage`, or None; creates nothing (a journal
    file that does not exist yet holds no study, and is not created)."""
    if "://" not in settings.storage and not Path(settings.storage).exists():
        return None
    storage = make_storage(settings.storage)
    names = {s.study_name for s in optuna.study.get_all_study_summaries(storage, include_best_trial=False)}
    return optuna.load_study(study_name=settings.study, storage=storage) if settings.study in names else None


def settings_differ(study, settings):
    """The STUDY_KEYS whose value in `settings` differs from what `study` was made with; UsageError for a
    study that gp_hpo.hpo did not make (no saved settings)."""
    saved = study.user_attrs.get("settings")
    if saved is None:
        raise UsageError(f"study {settings.study!r} in {settings.storage} was not made by gp_hpo.hpo (no settings)")
    return [k for k in STUDY_KEYS if saved.get(k) != settings.to_dict().get(k)]


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
    differ = settings_differ(study, settings)
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


def queue_retry(study, frozen, max_retry):
    """Queue a WAITING copy of the failed trial `frozen` (same parameters and seed) with Optuna's
    `RetryHeartbeatStaleTrialCallback`, at most `max_retry` times per original trial; the attempt's own
    user attributes (`ATTEMPT_ATTRS`) and its heartbeat are not copied. Returns the retry's number or None."""
    clean = copy.deepcopy(frozen)
    clean.user_attrs = {k: v for k, v in frozen.user_attrs.items() if k not in ATTEMPT_ATTRS}
    clean.system_attrs = {k: v for k, v in frozen.system_attrs.items() if k != "heartbeat"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry)
    retry(study, clean)
    queued = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
              if frozen.number in t.system_attrs.get("retry_history", ())]
    return queued[0] if queued else None


def fail_and_retry(study, trial_id, message, max_retry, settings=None):
    """Mark a RUNNING trial FAIL with the user attribute `error` = `message`, queue its retry and print its
    progress line; False when it was no longer RUNNING (finished or failed by another worker meanwhile)."""
    storage = study._storage
    try:
        frozen = storage.get_trial(trial_id)
        if frozen.state != TrialState.RUNNING:
            return False
        storage.set_trial_user_attr(trial_id, "error", message)
        storage.set_trial_user_attr(trial_id, "epochs", frozen.last_step or 0)
        if not storage.set_trial_state_values(trial_id, TrialState.FAIL):
            return False
    except Exception:  # noqa: BLE001 - finished or failed by another worker meanwhile
        return False
    retry = queue_retry(study, storage.get_trial(trial_id), max_retry)
    print_progress(study, trial_id, settings, message + (f"; retry queued as trial {retry}" if retry is not None
                                                         else "; no retry left (--max-retry)"))
    return True


def fail_stale_trials(study, grace_seconds, max_retry, settings=None):
    """Mark RUNNING trials whose heartbeat is older than `grace_seconds` as FAIL and queue their retry.

    Returns the numbers of the trials this call failed (another worker may fail some first).
    """
    now, failed = time.time(), []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        beat = t.system_attrs.get("heartbeat", t.datetime_start.timestamp() if t.datetime_start else now)
        if now - beat <= grace_seconds:
            continue
        if fail_and_retry(study, t._trial_id, f"heartbeat stale for {now - beat:.0f} s (worker killed?)",
                          max_retry, settings):
            failed.append(t.number)
    return failed


def interrupt_trial(study, trial_id, max_retry, settings=None):
    """Ctrl-C: mark the trial FAIL ("interrupted") and queue its retry now (SIGINT ignored meanwhile, so a
    second Ctrl-C cannot leave it half done); True when it was still RUNNING."""
    with _sigint_ignored():
        return fail_and_retry(study, trial_id, INTERRUPTED, max_retry, settings)


@contextlib.contextmanager
def _sigint_ignored():
    """Ignore SIGINT inside the block (only the main thread can; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)


def _format_config(params):
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def best_so_far(trials):
    """(best error, its trial number) over finished COMPLETE/PRUNED trials (as in the summary), or None."""
    scored = [(trial_error(t), t.number) for t in trials
              if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and not t.user_attrs.get("skipped")
              and not t.user_attrs.get("surplus") and trial_error(t) is not None]
    return min(scored) if scored else None


def trials_left(trials, budget):
    """First attempts of the budget not finished yet, plus the retries queued."""
    finished = sum(_counted(t) and t.state.is_finished() for t in trials)
    retries = sum(t.state == TrialState.WAITING and "failed_trial" in t.system_attrs for t in trials)
    return max(0, budget - finished) + retries


def print_progress(study, trial_id, settings, detail):
    """One line on stderr for a finished trial, as Optuna logs one: "gp_hpo.hpo: trial N STATE: DETAIL;
    E epochs, CONFIG; best B (trial M); L trials left" (DETAIL: the error, or the failure's message)."""
    trial = study._storage.get_trial(trial_id)
    trials = study.get_trials(deepcopy=False)
    state = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned"}.get(trial.state, "failed")
    if trial.user_attrs.get("skipped"):
        state = "skipped"
    epochs = trial.user_attrs.get("epochs", trial.last_step or 0)
    best = best_so_far(trials)
    line = (f"gp_hpo.hpo: trial {trial.number} {state}: {detail}; {epochs} epoch{'s' * (epochs != 1)}, "
            f"{{{_format_config(trial.params)}}}; "
            + (f"best {best[0]:.6g} (trial {best[1]})" if best else "no error yet"))
    if settings is not None:
        line += f"; {trials_left(trials, settings.trials)} trials left"
    print(line, file=sys.stderr, flush=True)


def write_traceback(study_dir, number, text):
    """Write a failed trial's traceback to STUDY_DIR/errors/trial-N.txt; return the path (None if it cannot
    be written: the traceback is in the trial's user attributes all the same)."""
    path = Path(study_dir) / ERRORS / f"trial-{number}.txt"
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    except OSError:
        return None
    return path


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


def run_trial(study, trial, scheduler, objective, settings, worker, study_dir=None):
    """Run one asked trial to its end (COMPLETE, PRUNED or FAIL), print its progress line, return its state.

    The heartbeat runs from the start, so a successive-halving slot waiting for its rung
    is not taken for a dead one. A trial that raises gets its traceback in the user attribute
    `traceback` and, with `study_dir`, in `study_dir/errors/trial-N.txt`.
    """
    with _Heartbeat(study._storage, trial._trial_id, settings.heartbeat_seconds):
        state, detail = _run_trial(study, trial, scheduler, objective, settings, worker, study_dir)
    print_progress(study, trial._trial_id, settings, detail)
    return state


def _run_trial(study, trial, scheduler, objective, settings, worker, study_dir):
    trial.set_user_attr("worker", worker)
    config = scheduler.suggest(study, trial)
    if config is None:
        trial.set_user_attr("skipped", True)
        study.tell(trial, state=TrialState.PRUNED)
        return TrialState.PRUNED, "nothing to promote from the rung below"
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
        text = traceback.format_exc()
        trial.set_user_attr("error", message)
        trial.set_user_attr("traceback", text)
        trial.set_user_attr("epochs", last["epoch"])
        study.tell(trial, state=TrialState.FAIL)
        path = write_traceback(study_dir, trial.number, text) if study_dir is not None else None
        return TrialState.FAIL, message + (f" (traceback in {path})" if path else "")
    trial.set_user_attr("epochs", last["epoch"])
    if last["stopped"] is not None:
        trial.set_user_attr("stopped", last["stopped"])
        study.tell(trial, state=TrialState.PRUNED)
        return TrialState.PRUNED, f"error {last['error']:.6g}, stopped" + (
            " at the deadline" if last["stopped"] == "deadline" else "")
    study.tell(trial, last["error"])
    scheduler.update(study, trial, last["error"])
    return TrialState.COMPLETE, f"error {last['error']:.6g}"


def work(settings, worker=None, poll_seconds=0.2, study_dir=None):
    """One worker: run trials of the study until `settings.trials` first attempts finished (or the deadline).

    Ctrl-C (KeyboardInterrupt) marks the trial this worker holds as failed ("interrupted"), queues its
    retry, and is raised again. `study_dir`: where tracebacks of failing trials are written (errors/).
    """
    if isinstance(settings, dict):
        settings = StudySettings.from_dict(settings)
    worker = worker or f"{socket.gethostname()}:{os.getpid()}"
    space = ConfigSpace(settings.space)
    objective = load_objective(settings.objective)
    scheduler = make_scheduler(settings.scheduler, space, settings.min_epochs, settings.max_epochs, settings.eta)
    study = open_study(settings, create=False)
    study.sampler = make_sampler(settings.searcher, space, settings.seed, settings.initial_random)
    study.pruner = scheduler.pruner()
    ran, trial = 0, None
    try:
        while time.time() < settings.deadline:
            trial = None
            fail_stale_trials(study, settings.grace_seconds, settings.max_retry, settings)
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
            run_trial(study, trial, scheduler, objective, settings, worker, study_dir)
            ran += 1
    except KeyboardInterrupt:
        if trial is not None:
            interrupt_trial(study, trial._trial_id, settings.max_retry, settings)
        raise
    return ran


def _worker_process(settings, worker, study_dir=None):
    try:
        work(settings, worker, study_dir=study_dir)
    except DlsuiteError as e:
        print(f"gp_hpo.hpo worker {worker}: error: {e}", file=sys.stderr, flush=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


def run_workers(settings, workers, in_process=True, study_dir=None, interrupt_wait=15.0):
    """Run `workers` workers on the study (one in this process when `in_process` and workers == 1).

    Worker processes are started with the spawn method (TensorFlow does not survive a fork).
    Returns the exit codes of the processes (empty when run in process). On Ctrl-C the workers
    (which get the terminal's SIGINT too; it is sent on to those that did not) mark their trials
    interrupted and exit; one still alive after `interrupt_wait` seconds is terminated.
    """
    if workers == 1 and in_process:
        work(settings, "w0", study_dir=study_dir)
        return []
    ctx = multiprocessing.get_context("spawn")
    study_dir = None if study_dir is None else str(study_dir)
    procs = [ctx.Process(target=_worker_process, args=(settings.to_dict(), f"w{i}", study_dir))
             for i in range(workers)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        with _sigint_ignored():
            _stop_workers(procs, interrupt_wait)
        raise
    return [p.exitcode for p in procs]


def _stop_workers(procs, wait):
    """After Ctrl-C: give the workers a second to react to the terminal's SIGINT, send it to those still
    running, wait up to `wait` seconds for them to mark their trials and exit, then terminate the rest."""
    deadline = time.time() + wait
    for p in procs:
        p.join(max(0.0, min(1.0, deadline - time.time())))
    for p in procs:
        if p.is_alive():
            os.kill(p.pid, signal.SIGINT)
    for p in procs:
        p.join(max(0.0, deadline - time.time()))
        if p.is_alive():
            p.terminate()
            p.join()


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
        self.interrupted = []  # numbers of the trials Ctrl-C stopped (failed and queued for retry)

    def run(self, workers=1, study_dir=None, in_process=True):
        """Run the workers; returns the summary (results.csv and incumbent.png written into
        `study_dir` when given, also when Ctrl-C stops the run; KeyboardInterrupt is then raised
        again with `interrupted` set). Tracebacks of failing trials go to `study_dir/errors/`."""
        study = open_study(self.settings, create=True)
        s = self.settings
        make_scheduler(s.scheduler, ConfigSpace(s.space), s.min_epochs, s.max_epochs, s.eta).prime(study)
        started = time.time()
        try:
            run_workers(self.settings, workers, in_process, study_dir=study_dir)
        except KeyboardInterrupt:
            self.interrupted = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
                                if t.user_attrs.get("error") == INTERRUPTED
                                and t.datetime_complete.timestamp() >= started]
            raise
        finally:
            self.records = trial_records(study)
            if study_dir is not None:
                summary = write_results(study, study_dir)
        return summary if study_dir is not None else summarize(study, self.records)
