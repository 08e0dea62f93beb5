"""Run directories as files, without TensorFlow: which model wrote a run, how far it got, whether it finished.

A run directory holds `config.json` (the hyperparameters, the command line and `module`, the
`python -m` module that wrote it), `status.json` (`state`: running, completed, interrupted or
failed, with `error` for a failed one), `checkpoints/epoch-NNNN/` (each with a `DONE` file holding its
epoch once complete) and the final `model.keras`. Everything here reads and writes those files only,
so the command line can check a run before it imports TensorFlow or reads any data.
"""
import json
import re
from pathlib import Path

from common.errors import DlsuiteError, UsageError
from common.files import write_json

CHECKPOINTS = "checkpoints"
STATUS = "status.json"
MODEL = "model.keras"
STATES = ("running", "completed", "interrupted", "failed")


def read_config(run_dir):
    """The saved config.json of a run directory as a dict; one-line `DlsuiteError` if missing or corrupt."""
    path = Path(run_dir) / "config.json"
    if Path(run_dir).exists() and not Path(run_dir).is_dir():
        raise UsageError(f"--run-dir {run_dir} is a file, not a run directory; pass the --run-dir of a train run")
    if not path.exists():
        raise UsageError(f"{run_dir} is not a run directory (no config.json); pass the --run-dir of a train run")
    try:
        config = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise DlsuiteError(f"{path} is corrupt ({e}); restore it or train a new run") from None
    if not isinstance(config, dict):
        raise DlsuiteError(f"{path} is corrupt (not a JSON object); restore it or train a new run")
    return config


def module_of(config):
    """The `python -m` module that wrote a run: its config's `module`, else (runs written before it was
    recorded) the module named in its `command`; None when neither says."""
    if config.get("module"):
        return config["module"]
    found = re.match(r"python -m (\S+)", str(config.get("command", "")))
    return found.group(1) if found else None


def checkpoint_dirs(run_dir):
    """The run's complete checkpoint directories (those with a DONE file), oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.name.startswith("epoch-") and (p / "DONE").exists())


def epochs_done(run_dir):
    """The epoch of the run's newest complete checkpoint (0 when it has none)."""
    found = checkpoint_dirs(run_dir)
    if not found:
        return 0
    try:
        return int((found[-1] / "DONE").read_text())
    except (OSError, ValueError):
        return int(found[-1].name.split("-")[1])


def read_status(run_dir):
    """`{"state": ..., ...}` of a run. A run written before status.json existed counts as completed when it has
    its final model.keras, else as unfinished ("running" with no process behind it)."""
    path = Path(run_dir) / STATUS
    try:
        status = json.loads(path.read_text())
        if isinstance(status, dict) and status.get("state") in STATES:
            return status
    except (OSError, ValueError, UnicodeDecodeError):
        pass
    return {"state": "completed" if (Path(run_dir) / MODEL).exists() else "running"}


def write_status(run_dir, state, **facts):
    """Record the run's `state` (one of STATES) and `facts` (e.g. `error`, `epochs_done`) in status.json."""
    assert state in STATES, state
    write_json(Path(run_dir) / STATUS, {"state": state, **facts})


def describe(run_dir):
    """A few words on an unfinished run's state, for warnings: "failed (training diverged ...)"."""
    status = read_status(run_dir)
    if status["state"] == "failed":
        return f"failed ({status.get('error', 'no reason recorded')})"
    if status["state"] == "running":
        return "unfinished (its process stopped or is still running)"
    return status["state"]


def newest_run(root):
    """(newest completed run directory under `root`, the newer runs skipped because they are not completed);
    (None, skipped) when none is completed."""
    root = Path(root)
    runs = sorted(p for p in root.glob("*") if (p / "config.json").exists()) if root.is_dir() else []
    skipped = []
    for path in reversed(runs):
        if read_status(path)["state"] == "completed":
            return path, skipped
        skipped.append(path)
    return None, skipped
