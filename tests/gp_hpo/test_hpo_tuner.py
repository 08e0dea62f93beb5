import csv
import json
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from gp_hpo.hpo import main
from gp_hpo.hpo import tuner
from gp_hpo.hpo.tuner import StudySettings, Tuner, open_study, trial_records

SPACE = {"x": {"type": "uniform", "low": 0.0, "high": 1.0}}
LOG_ENV = "HPO_TEST_CALLS"
HERE = __name__


def _log_call(config):
    if os.environ.get(LOG_ENV):
        with open(os.environ[LOG_ENV], "a") as f:
            f.write(json.dumps({"x": config["x"], "seed": config["seed"], "pid": os.getpid()}) + "\n")


def sleepy(config, report):
    """error = x; 0.1 s per epoch."""
    _log_call(config)
    for epoch in range(1, config["max_epochs"] + 1):
        time.sleep(0.1)
        if not report(epoch, config["x"]):
            return


def slow_epochs(config, report):
    """error = x; 0.3 s per epoch: long enough that a trial seen after its first epoch is still running
    when the test kills its worker (0.1 s epochs let it finish in between on a loaded machine)."""
    _log_call(config)
    for epoch in range(1, config["max_epochs"] + 1):
        time.sleep(0.3)
        if not report(epoch, config["x"]):
            return


def counting(config, report):
    _log_call(config)
    for epoch in range(1, config["max_epochs"] + 1):
        report(epoch, config["x"] + 1 / epoch)


counting.space = SPACE


def flaky(config, report):
    """Raises for x > 0.6, reports NaN at epoch 2 for x < 0.2."""
    if config["x"] > 0.6:
        raise ValueError(f"x too big: {config['x']:.3f}\nsecond line")
    for epoch in range(1, config["max_epochs"] + 1):
        report(epoch, math.nan if config["x"] < 0.2 and epoch == 2 else config["x"])


def always_fails(config, report):
    report(1, config["x"])
    raise RuntimeError(f"out of memory at x={config['x']:.3f}")


always_fails.space = SPACE


def interrupted_once(config, report):
    """Ctrl-C in epoch 2 of the first trial (a marker file in $HPO_TEST_CALLS's folder says it happened)."""
    marker = os.path.join(os.path.dirname(os.environ[LOG_ENV]), "interrupted")
    _log_call(config)
    for epoch in range(1, config["max_epochs"] + 1):
        if epoch == 2 and not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends
            time.sleep(5)  # interrupted by the KeyboardInterrupt
        report(epoch, config["x"])


interrupted_once.space = SPACE


def _sigint_as_in_a_terminal():
    """Before a child process starts: SIGINT's default action, so Python installs its own handler (a process
    started in the background by a non-interactive shell, nohup ... &, would pass SIGINT on ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def calls(path):
    return [json.loads(line) for line in open(path)] if os.path.exists(path) else []


def cli(*args, capsys=None):
    code = main(["run", *args])
    out, err = capsys.readouterr() if capsys else ("", "")
    return code, out, err


def test_two_journal_workers_finish_T_trials_once_each_and_retry_a_killed_one(tmp_path, monkeypatch):
    monkeypatch.setenv(LOG_ENV, str(tmp_path / "calls.jsonl"))
    settings = StudySettings(objective=f"{HERE}:slow_epochs", space=SPACE, storage=str(tmp_path / "journal.log"),
                             trials=14, max_epochs=3, heartbeat_seconds=0.2, grace_seconds=1.5)
    study = open_study(settings, create=True)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=tuner._worker_process, args=(settings.to_dict(), f"w{i}")) for i in range(2)]
    for p in procs:
        p.start()
    deadline = time.time() + 120
    while time.time() < deadline:  # kill w1 in the middle of one of its trials
        running = [t for t in study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
                   if t.user_attrs.get("worker") == "w1" and len(t.intermediate_values) == 1]
        if running and len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) >= 2:
            procs[1].kill()
            break
        time.sleep(0.05)
    procs[0].join(180)
    procs[1].join(5)
    assert procs[0].exitcode == 0 and procs[1].exitcode != 0
    rows = trial_records(study)
    counted = [r for r in rows if r["retry_of"] == ""]
    assert len(counted) == 14  # T first attempts, no surplus
    killed = [r for r in rows if r["state"] == "retried"]
    assert len(killed) == 1 and killed[0]["worker"] == "w1" and "heartbeat stale" in killed[0]["message"]
    retry = [r for r in rows if r["retry_of"] == killed[0]["trial"]]
    assert len(retry) == 1 and retry[0]["state"] == "complete" and retry[0]["param_x"] == killed[0]["param_x"]
    assert sum(r["state"] == "complete" for r in rows) == 14
    assert len({r["param_x"] for r in counted}) == 14  # no configuration drawn twice
    assert {r["worker"] for r in rows} == {"w0", "w1"}
    # every completed trial ran exactly once, except the killed one (started twice)
    started = [c["x"] for c in calls(tmp_path / "calls.jsonl")]
    assert sorted(started) == sorted([r["param_x"] for r in counted] + [killed[0]["param_x"]])
    # every report is in the storage: the killed trial kept the epochs it reported before dying
    assert study.trials[killed[0]["trial"]].intermediate_values


def test_resume_does_not_rerun_finished_trials(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(LOG_ENV, str(tmp_path / "calls.jsonl"))
    d = tmp_path / "study"
    flags = ["--objective", f"{HERE}:counting", "--max-epochs", "2", "--study-dir", str(d),
             "--heartbeat-seconds", "0.2", "--grace-seconds", "1"]
    assert cli(*flags, "--trials", "4", capsys=capsys)[0] == 0
    # a worker killed in the middle of trial 4: RUNNING, one epoch reported, heartbeat long gone
    study = optuna.load_study(study_name="hpo", storage=tuner.make_storage(str(d / "journal.log")))
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    trial.report(0.9, 1)
    study._storage.set_trial_system_attr(trial._trial_id, "heartbeat", time.time() - 100)
    before = {r["trial"]: r for r in trial_records(study)}
    code, out, _ = cli("--resume", "--study-dir", str(d), "--trials", "6", capsys=capsys)
    assert code == 0
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["trials"] == 6 and summary["complete_trials"] == 6 and summary["retried_trials"] == 1
    # the killed trial counts as the 5th first attempt: after resuming, its retry and one new trial ran
    assert len(calls(tmp_path / "calls.jsonl")) == 4 + 2
    after = {r["trial"]: r for r in trial_records(study)}
    for n in range(4):
        assert after[n] == before[n]  # finished trials untouched
    assert after[4]["state"] == "retried" and after[4]["message"].startswith("heartbeat stale")
    retry = [r for r in after.values() if r["retry_of"] == 4]
    # the retry that finished does not keep the killed attempt's error text
    assert len(retry) == 1 and retry[0]["state"] == "complete" and retry[0]["message"] == ""
    with open(d / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == 7


def test_cli_outputs(tmp_path, capsys):
    d = tmp_path / "s"
    code, out, _ = cli("--objective", "gp_hpo.hpo.objectives:branin", "--scheduler", "asha", "--trials", "12",
                       "--max-epochs", "9", "--study-dir", str(d), "--seed", "3", capsys=capsys)
    assert code == 0
    summary = json.loads(out.strip().splitlines()[-1])
    assert {"best_config", "best_error", "total_epochs", "wall_seconds", "trials", "failed_trials"} <= set(summary)
    assert set(summary["best_config"]) == {"x0", "x1"} and summary["trials"] == 12
    with open(d / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12 and {"trial", "state", "worker", "epochs", "error", "start_s", "end_s"} <= set(rows[0])
    assert summary["total_epochs"] == sum(int(r["epochs"]) for r in rows)
    assert summary["best_error"] == pytest.approx(min(float(r["error"]) for r in rows))
    assert (d / "incumbent.png").stat().st_size > 1000 and (d / "journal.log").exists()


def test_sqlite_storage(tmp_path):
    settings = StudySettings(objective=f"{HERE}:counting", space=SPACE, storage=f"sqlite:///{tmp_path}/s.db",
                             trials=5, max_epochs=2, searcher="bo", initial_random=3)
    summary = Tuner(settings).run(1)
    assert summary["complete_trials"] == 5 and summary["total_epochs"] == 10


def test_failing_and_non_finite_trials_are_recorded_and_the_study_goes_on(tmp_path, capsys):
    d = tmp_path / "s"
    code, out, err = cli("--objective", f"{HERE}:flaky", "--space", str(_space_file(tmp_path)), "--trials", "12",
                         "--max-epochs", "3", "--study-dir", str(d), capsys=capsys)
    assert code == 0
    summary = json.loads(out.strip().splitlines()[-1])
    with open(d / "results.csv") as f:
        rows = list(csv.DictReader(f))
    big = [r for r in rows if float(r["param_x"]) > 0.6]
    nan = [r for r in rows if float(r["param_x"]) < 0.2]
    assert big and nan and len(rows) == 12
    assert all(r["state"] == "failed" and r["message"].startswith("ValueError: x too big") for r in big)
    assert all(r["state"] == "failed" and "non-finite error (nan) at epoch 2" in r["message"]
               and r["epochs"] == "1" for r in nan)
    assert summary["failed_trials"] == len(big) + len(nan) and summary["complete_trials"] == 12 - len(big) - len(nan)
    assert f"trial {big[0]['trial']} failed: ValueError: x too big" in err and "second line" not in err


def _space_file(tmp_path, spec=None):
    path = tmp_path / "space.json"
    path.write_text(json.dumps(SPACE if spec is None else spec))
    return path


def test_joining_a_study_with_other_settings_is_refused(tmp_path, capsys):
    storage = str(tmp_path / "shared.log")
    base = ["--objective", f"{HERE}:counting", "--storage", storage, "--trials", "2", "--max-epochs", "2"]
    assert cli(*base, "--study-dir", str(tmp_path / "a"), capsys=capsys)[0] == 0
    code, _, err = cli(*base, "--max-epochs", "3", "--study-dir", str(tmp_path / "b"), capsys=capsys)
    assert code == 2 and "already exists with other settings (max_epochs)" in err
    # the same flags join: the study already holds its 2 trials, so nothing more runs
    code, out, _ = cli(*base, "--study-dir", str(tmp_path / "c"), capsys=capsys)
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["trials"] == 2


def test_max_wall_seconds_stops_the_study(tmp_path):
    settings = StudySettings(objective=f"{HERE}:sleepy", space=SPACE, storage=str(tmp_path / "j.log"), trials=50,
                             max_epochs=3, deadline=time.time() + 1.0)
    tuner = Tuner(settings)
    summary = tuner.run(1)
    assert 2 <= summary["trials"] < 10
    # the trial running at the deadline stops at its next report (unless the deadline fell between trials)
    assert (tuner.records[-1]["state"], tuner.records[-1]["message"]) in (("pruned", "deadline"), ("complete", ""))
    assert all(r["state"] == "complete" and r["epochs"] == 3 for r in tuner.records[:-1])


def test_a_study_where_every_trial_failed_exits_1_with_the_first_error(tmp_path, capsys):
    d = tmp_path / "s"
    code, out, err = cli("--objective", f"{HERE}:always_fails", "--trials", "3", "--max-epochs", "2",
                         "--study-dir", str(d), capsys=capsys)
    last = err.strip().splitlines()[-1]
    study = optuna.load_study(study_name="hpo", storage=tuner.make_storage(str(d / "journal.log")))
    first_x = study.trials[0].params["x"]
    assert code == 1 and not out
    assert last == (f"python -m gp_hpo.hpo run: error: all 3 trials failed; the first, trial 0: RuntimeError: out of "
                    f"memory at x={first_x:.3f} (traceback in {d}/errors/trial-0.txt); fix the objective and start a "
                    "new --study-dir")
    summary = json.loads((d / "summary.json").read_text())
    assert summary["failed_trials"] == summary["trials"] == 3 and summary["best_config"] is None


def test_a_failing_trial_keeps_its_traceback(tmp_path, capsys):
    d = tmp_path / "s"
    code, _, err = cli("--objective", f"{HERE}:flaky", "--space", str(_space_file(tmp_path)), "--trials", "12",
                       "--max-epochs", "3", "--study-dir", str(d), capsys=capsys)
    assert code == 0
    study = optuna.load_study(study_name="hpo", storage=tuner.make_storage(str(d / "journal.log")))
    big = [t for t in study.trials if t.params["x"] > 0.6]
    nan = [t for t in study.trials if t.params["x"] < 0.2]
    assert big and nan
    for t in big + nan:
        text = t.user_attrs["traceback"]
        assert text.startswith("Traceback (most recent call last):") and (d / "errors" / f"trial-{t.number}.txt"
                                                                          ).read_text() == text
        assert f"gp_hpo.hpo: trial {t.number} failed: {t.user_attrs['error']} (traceback in {d}/errors/" \
               f"trial-{t.number}.txt); " in err
    for t in big:  # the whole message (both lines) and where it was raised
        assert t.user_attrs["traceback"].rstrip().endswith(f"ValueError: x too big: {t.params['x']:.3f}\nsecond line")
        assert ", in flaky\n" in t.user_attrs["traceback"]
    for t in nan:
        assert "NonFiniteError: reported a non-finite error (nan) at epoch 2" in t.user_attrs["traceback"]
    assert sorted(p.name for p in (d / "errors").iterdir()) == sorted(f"trial-{t.number}.txt" for t in big + nan)


def test_each_finished_trial_prints_one_progress_line(tmp_path, capsys):
    d = tmp_path / "s"
    code, out, err = cli("--objective", f"{HERE}:counting", "--trials", "4", "--max-epochs", "2", "--study-dir",
                         str(d), capsys=capsys)
    assert code == 0
    with open(d / "results.csv") as f:
        rows = list(csv.DictReader(f))
    lines = err.strip().splitlines()
    assert len(lines) == 4 and len(rows) == 4
    best = (math.inf, None)
    for n, (line, row) in enumerate(zip(lines, rows)):
        x = float(row["param_x"])
        best = min(best, (x + 0.5, n))
        assert line == (f"gp_hpo.hpo: trial {n} complete: error {x + 0.5:.6g}; 2 epochs, {{x={x:.4g}}}; "
                        f"best {best[0]:.6g} (trial {best[1]}); {3 - n} trials left")


def test_ctrl_c_fails_the_running_trial_at_once_and_queues_its_retry(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(LOG_ENV, str(tmp_path / "calls.jsonl"))
    d = tmp_path / "s"
    flags = ["--objective", f"{HERE}:interrupted_once", "--trials", "3", "--max-epochs", "3", "--study-dir", str(d)]
    # a terminal's Ctrl-C reaches Python's own handler; a process started in the background by a
    # non-interactive shell (nohup ... &) inherits SIGINT ignored, and then nothing would be raised
    signal.signal(signal.SIGINT, signal.default_int_handler)  # tests/conftest.py puts the old one back
    code, out, err = cli(*flags, capsys=capsys)
    assert code == 130 and not out, (code, out, err)
    assert err.strip().splitlines()[-1] == (
        "python -m gp_hpo.hpo run: error: interrupted: trial 0 marked failed and queued for retry; continue with: "
        f"python -m gp_hpo.hpo run --resume --study-dir {d}")
    study = optuna.load_study(study_name="hpo", storage=tuner.make_storage(str(d / "journal.log")))
    TS = optuna.trial.TrialState
    first, retry = study.trials
    assert first.state == TS.FAIL and first.user_attrs["error"] == "interrupted (Ctrl-C)"
    assert first.user_attrs["epochs"] == 1 and first.intermediate_values == {1: first.params["x"]}
    assert retry.state == TS.WAITING and retry.system_attrs["failed_trial"] == 0
    assert retry.params == first.params and retry.user_attrs == {"seed": first.user_attrs["seed"]}
    assert "heartbeat" not in retry.system_attrs
    # the default grace period (20 s) is not waited for: nothing is left RUNNING
    code, out, err = cli("--resume", "--study-dir", str(d), capsys=capsys)
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["complete_trials"] == 3 and summary["retried_trials"] == 1 and summary["failed_trials"] == 0
    rows = {r["trial"]: r for r in trial_records(study)}
    assert rows[0]["state"] == "retried" and rows[0]["message"] == "interrupted (Ctrl-C)"
    assert rows[1]["retry_of"] == 0 and rows[1]["state"] == "complete" and rows[1]["message"] == ""
    assert rows[1]["param_x"] == rows[0]["param_x"] and rows[1]["seed"] == rows[0]["seed"] and rows[1]["epochs"] == 3
    assert len(calls(tmp_path / "calls.jsonl")) == 4  # the interrupted trial ran again, the others once


@pytest.mark.slow  # about 35 s: the command and its two worker processes each import TensorFlow
def test_ctrl_c_on_two_worker_processes(tmp_path):
    """The terminal's SIGINT reaches the command and both workers: each marks its trial interrupted and queues
    its retry, the command exits 130 with the --resume hint, and nothing is left RUNNING."""
    d = tmp_path / "s"
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "gp_hpo.hpo", "run", "--objective", f"{HERE}:slow_epochs",
                             "--space", str(_space_file(tmp_path)), "--workers", "2", "--trials", "6",
                             "--max-epochs", "30", "--study-dir", str(d)],
                            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=_sigint_as_in_a_terminal)
    TS = optuna.trial.TrialState
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:  # both workers one epoch into a trial
            if (d / "journal.log").exists():
                study = optuna.load_study(study_name="hpo", storage=tuner.make_storage(str(d / "journal.log")))
                running = [t for t in study.get_trials(states=(TS.RUNNING,)) if t.intermediate_values]
                if len(running) == 2:
                    break
            time.sleep(0.2)
        else:
            pytest.fail(f"the workers never ran two trials at once: {proc.communicate()}")
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    numbers = sorted(t.number for t in running)
    assert proc.returncode == 130 and not out.strip()
    assert err.strip().splitlines()[-1] == (
        f"python -m gp_hpo.hpo run: error: interrupted: trials {numbers[0]}, {numbers[1]} marked failed and queued "
        f"for retry; continue with: python -m gp_hpo.hpo run --resume --study-dir {d}")
    study = optuna.load_study(study_name="hpo", storage=tuner.make_storage(str(d / "journal.log")))
    assert not study.get_trials(states=(TS.RUNNING,))
    for n in numbers:
        assert study.trials[n].state == TS.FAIL and study.trials[n].user_attrs["error"] == "interrupted (Ctrl-C)"
    retries = study.get_trials(states=(TS.WAITING,))
    assert sorted(t.system_attrs["failed_trial"] for t in retries) == numbers
