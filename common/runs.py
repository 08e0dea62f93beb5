"""Run directories, without TensorFlow at import: which model wrote a run, how far it got, whether it finished,
and `Run`, the directory a command trains into (TensorFlow loads when it writes TensorBoard or checkpoints).

A run directory holds `config.json` (the hyperparameters, the command line and `module`, the
`python -m` module that wrote it), `status.json` (`state`: running, completed, interrupted or
failed, with `error` for a failed one), `checkpoints/epoch-NNNN/` (each with a `DONE` file holding its
epoch once complete) and the final `model.keras`. Everything here reads and writes those files only,
so the command line can check a run before it imports TensorFlow or reads any data.
"""
import dataclasses
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

from common.errors import CheckpointMismatch, DlsuiteError, NoIntactCheckpoint, UsageError
from common.files import atomic_path, write_json

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


class Run:
    """A run directory. `resume=True` requires an existing run with a checkpoint.

    Only the chief writes into `path`; other multi-worker replicas write their
    (identical) checkpoints into a scratch directory that is deleted. A resumed run writes
    nothing until it has restored its checkpoint or trained (`commit`): a resume that fails
    before then leaves every file of the run as it was.
    """

    def __init__(self, path, resume=False, chief=True, keep_checkpoints=3):
        self.path = Path(path)
        self.resume = resume
        self.chief = chief
        self.keep_checkpoints = keep_checkpoints
        if resume and self.latest_checkpoint() is None:
            raise UsageError(f"no checkpoint in {self.path / CHECKPOINTS}: train into it first "
                             "(or start a new run without --resume)")
        if not resume and self.latest_checkpoint() is not None:
            raise UsageError(
                f"run directory {self.path} already holds checkpoints; pass --resume to continue it "
                "or choose a new --run-dir"
            )
        self._deferred = {} if resume else None
        if chief and not resume:
            self.path.mkdir(parents=True, exist_ok=True)
            write_status(self.path, "running")
        self._writer = None
        self.interrupted = False  # set by `fit` when Ctrl-C stopped the run early

    # --- files -----------------------------------------------------------------
    def file(self, name):
        """Path of a file inside the run directory."""
        return self.path / name

    @property
    def committed(self):
        """True once this command may write into the run (a new run, or a resume that restored or trained)."""
        return self._deferred is None

    def commit(self):
        """Write what a resumed run deferred (its config.json, ...) and mark it running again."""
        if self._deferred is None:
            return
        deferred, self._deferred = self._deferred, None
        if self.chief:
            write_status(self.path, "running")
        for name, obj in deferred.items():
            self.write_json(name, obj)

    def write_json(self, name, obj):
        if self._deferred is not None:
            self._deferred[name] = obj
        elif self.chief:
            write_json(self.file(name), obj)

    def write_config(self, config, **extra):
        """Record every hyperparameter (a dataclass) plus `extra` facts in config.json."""
        data = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
        self.write_json("config.json", {**data, **extra})

    def load_config(self):
        return read_config(self.path)

    def finish(self, state, **facts):
        """Record how the command ended (`STATES`); a completed run keeps only its newest
        `keep_checkpoints` checkpoints. Nothing is recorded for a resume that never committed."""
        if not self.committed or not self.chief:
            return
        if state == "completed":
            for old in self.checkpoints()[:-self.keep_checkpoints]:
                shutil.rmtree(old)
        write_status(self.path, state, epochs_done=epochs_done(self.path), **facts)

    @property
    def metrics(self):
        path = self.file("metrics.json")
        return json.loads(path.read_text()) if path.exists() else []

    def log_epoch(self, logs):
        """Append one epoch's metrics to metrics.json and TensorBoard."""
        self.commit()
        history = [m for m in self.metrics if m["epoch"] != logs["epoch"]] + [logs]
        self.write_json("metrics.json", history)
        if not self.chief:
            return
        if self._writer is None:
            import tensorflow as tf

            self._writer_module = tf
            self._writer = tf.summary.create_file_writer(str(self.path / "tensorboard"))
        with self._writer.as_default():
            for key, value in logs.items():
                if key != "epoch" and isinstance(value, (int, float)):
                    self._writer_module.summary.scalar(key, value, step=logs["epoch"])
        self._writer.flush()

    # --- checkpoints -----------------------------------------------------------
    def checkpoints(self):
        return checkpoint_dirs(self.path)

    def latest_checkpoint(self):
        found = self.checkpoints()
        return found[-1] if found else None

    def save_checkpoint(self, epoch, objects, keep=None):
        """Write `objects` (name -> Keras layer/model or trackable) as checkpoint `epoch`.

        Layers and models are stored as their positional `variables` (weights plus the
        state of their random `SeedGenerator`s, so dropout masks continue on resume) with a
        shape manifest; other trackables (optimizers, schedules, plain variables) through
        TensorFlow's object graph. Keeps the newest `keep` (default 3; a completed run keeps its
        newest `keep_checkpoints`, see `finish`).
        """
        self.commit()
        keep = max(3, self.keep_checkpoints) if keep is None else keep
        import tensorflow as tf

        from common.checkpoints import checkpointable

        root = self.path / CHECKPOINTS if self.chief else Path(tempfile.mkdtemp(prefix="dlsuite-worker-"))
        trackables, manifest = checkpointable(objects, "save")
        with atomic_path(root / f"epoch-{epoch:04d}", directory=True) as tmp:
            tf.train.Checkpoint(**trackables).write(str(tmp / "state"))
            write_json(tmp / "weights.json", manifest)
            (tmp / "DONE").write_text(str(epoch))
        if not self.chief:
            shutil.rmtree(root)
            return
        for old in self.checkpoints()[:-keep]:
            shutil.rmtree(old)

    def restore(self, objects, checkpoint=None):
        """Restore `objects` from `checkpoint`, default the newest intact one; return its epoch.

        A damaged newest checkpoint (truncated or unreadable files) is skipped with one line
        on stderr naming the one used instead; `DlsuiteError` when none is intact. Layers and
        models must be built; their variables must match the checkpoint's shapes (else one-line
        `CheckpointMismatch`). Optimizer variables not yet created are restored when they are.
        """
        candidates = [checkpoint] if checkpoint is not None else self.checkpoints()[::-1]
        if not candidates:
            raise NoIntactCheckpoint(f"no checkpoint in {self.path / CHECKPOINTS}; train first")
        import tensorflow as tf

        from common.checkpoints import checkpointable, read_checkpoint

        trackables, manifest = checkpointable(objects, "restore")
        damaged = []
        for candidate in candidates:
            try:
                epoch = read_checkpoint(candidate, trackables, manifest)
            except CheckpointMismatch:
                raise
            except (tf.errors.OpError, ValueError, IndexError, KeyError, OSError) as e:
                damaged.append(f"{candidate.name} ({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})")
                continue
            if damaged:
                print(f"checkpoint {', '.join(damaged)} is damaged; restored {candidate.name} instead",
                      file=sys.stderr)
            return epoch
        raise NoIntactCheckpoint(f"no intact checkpoint in {self.path / CHECKPOINTS}: {'; '.join(damaged)}; "
                           "train a new run")
