"""Run directories and the epoch loop every trainer goes through.

A run directory holds `config.json` (every hyperparameter), `metrics.json` (one
entry per epoch), `checkpoints/epoch-NNNN/` (model and optimizer state, written to
a temporary directory and renamed, so an interrupted write never damages an
earlier checkpoint), `tensorboard/`, `curves.png` and the final `model.keras`.
"""
import math
import signal
import sys
import time

import keras
import tensorflow as tf

from common.keras_compat import build_from_dataset, prepare_multi_worker
from common.errors import CheckpointMismatch, DlsuiteError
from common import runs, seeding
from common.files import atomic_path
from common.runs import CHECKPOINTS, Run, read_config  # noqa: F401 (Run, read_config: part of this module's API)


seeding.apply_pending()  # the seed a command set before TensorFlow loaded


def set_seed(seed):
    """Seed Python, NumPy, TensorFlow and Keras in one call."""
    keras.utils.set_random_seed(int(seed))


def restore_from_saved_model(model, path, reason):
    """Set built `model`'s weights from the run's final `path` (model.keras) when no checkpoint can be read
    (`reason`), saying so in one line on stderr; returns the epochs the run recorded (None if unknown)."""
    try:
        saved = keras.models.load_model(path, compile=False)
    except Exception as e:  # a damaged .keras file raises whatever its reader meets
        raise DlsuiteError(f"{reason}; its {path.name} cannot be read either ({type(e).__name__}); "
                           "train a new run") from None
    shapes = [tuple(w.shape) for w in model.weights]
    if [tuple(w.shape) for w in saved.weights] != shapes:
        raise CheckpointMismatch(f"{reason}; its {path.name} does not fit this model (other sizes); "
                                 "pass the run's own hyperparameters")
    model.set_weights(saved.get_weights())
    print(f"no intact checkpoint in {path.parent / CHECKPOINTS}; using the final weights in {path}", file=sys.stderr)
    return runs.read_status(path.parent).get("epochs_done")


def optimizers_of(model):
    """The model's compiled optimizer plus any optimizer attributes (GAN-style models)."""
    found = []
    for value in [getattr(model, "optimizer", None), *vars(model).values()]:
        if isinstance(value, keras.optimizers.Optimizer) and all(value is not f for f in found):
            found.append(value)
    return found


def training_state(model):
    """Name -> trackable for everything a checkpoint must hold to resume `model`."""
    state = {"model": model}
    for i, opt in enumerate(optimizers_of(model)):
        state[f"optimizer_{i}"] = opt
        if isinstance(opt._learning_rate, CosineSchedule):
            state[f"schedule_{i}"] = opt._learning_rate.state
    return state


class _ScheduleState(tf.Module):
    def __init__(self, base_lr, total_steps):
        super().__init__()
        self.start_step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.start_lr = tf.Variable(float(base_lr), dtype=tf.float32, trainable=False)
        self.end_step = tf.Variable(int(total_steps), dtype=tf.int64, trainable=False)


@keras.saving.register_keras_serializable(package="dlsuite")
class CosineSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Cosine decay from `base_lr` to `alpha * base_lr` over `total_steps` optimizer steps
    (as `keras.optimizers.schedules.CosineDecay`), which `fit` can stretch on resume.

    Its position is checkpointed with the optimizer. When a run is resumed with another
    `--epochs`, the decay continues from the learning rate reached so far down to
    `alpha * base_lr` over the remaining steps (`continue_to`), with no jump; resumed with
    the same `--epochs` it is exactly the uninterrupted schedule.
    """

    def __init__(self, base_lr, total_steps, alpha=0.0):
        self.base_lr, self.alpha = float(base_lr), float(alpha)
        self.state = _ScheduleState(base_lr, max(int(total_steps), 1))

    def __call__(self, step):
        st = self.state
        span = tf.cast(tf.maximum(st.end_step - st.start_step, 1), tf.float32)
        done = tf.clip_by_value(tf.cast(tf.cast(step, tf.int64) - st.start_step, tf.float32), 0.0, span)
        end_lr = self.alpha * self.base_lr
        return end_lr + (st.start_lr - end_lr) * 0.5 * (1.0 + tf.cos(math.pi * done / span))

    @property
    def total_steps(self):
        return int(self.state.end_step.numpy())

    def continue_to(self, step, total_steps):
        """From optimizer step `step` on, decay from the current rate to the end over `total_steps`
        in all; returns True when the schedule changed (`total_steps` differs from its end)."""
        if int(total_steps) == self.total_steps or step >= total_steps:
            return False
        current = float(self(step))
        self.state.start_lr.assign(current)
        self.state.start_step.assign(int(step))
        self.state.end_step.assign(int(total_steps))
        return True

    def get_config(self):
        return {"base_lr": self.base_lr, "total_steps": self.total_steps, "alpha": self.alpha}


class StopOnInterrupt:
    """Context manager turning the first Ctrl-C into `.requested = True`; a second one aborts.

    Training loops check `.requested` after each epoch's checkpoint and stop cleanly.
    """

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self._previous = signal.getsignal(signal.SIGINT)
        try:
            signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread
            self._previous = None
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after this epoch's checkpoint (Ctrl-C again to abort now)", file=sys.stderr)

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class _OneEpoch(keras.callbacks.Callback):
    """Ends `model.fit` after one epoch (so Keras shows "Epoch k/N")."""

    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True


def _verbose():
    """Keras's live progress bar in a terminal or a notebook (Jupyter's stdout is no terminal), else a line
    per epoch (logs, CI)."""
    return 1 if sys.stdout.isatty() or "ipykernel" in sys.modules else 2


def check_finite(loss, epoch, advice):
    """Stop a diverged run with one line (`advice`: the way out) from `fit`'s `on_epoch_end`, which runs
    before the epoch's checkpoint is written, so the last good checkpoint stays the newest."""
    if not math.isfinite(loss):
        raise DlsuiteError(f"training diverged in epoch {epoch + 1} (loss {loss}); {advice}")


def fit(model, train_data, run, *, epochs, validation_data=None, on_epoch_end=None,
        steps_per_epoch=None, save_model=True, verbose=None, diverged_advice="lower --lr"):
    """Train `model` for `epochs` epochs into `run`, resuming when `run.resume` is set.

    `train_data` is a `tf.data.Dataset` or a function `epoch -> Dataset` (so shuffles
    can be seeded per epoch and a resumed run sees the same batches). After every
    epoch the logs, plus whatever `on_epoch_end(epoch, logs)` returns (a dict of extra
    metrics, e.g. a validation mAP), go to metrics.json and TensorBoard, and a
    checkpoint is written. Ctrl-C finishes the current epoch, checkpoints, and
    returns. A non-finite training loss stops the run before that epoch's checkpoint with
    one-line `DlsuiteError` naming the epoch and `diverged_advice` (the flag to change).
    Returns the list of per-epoch metric dicts.
    """
    state = training_state(model)
    start = 0
    history = [m for m in run.metrics if run.resume]
    make_data = train_data if callable(train_data) else (lambda epoch: train_data)
    if run.resume:
        if not model.weights:  # a subclassed model builds on its first batch: build it now
            build_from_dataset(model, make_data(0))
        planned = {name: obj for name, obj in state.items() if name.startswith("schedule_")}
        planned = {name: int(obj.end_step.numpy()) for name, obj in planned.items()}
        start = run.restore(state)
        run.commit()
        print(f"resumed from epoch {start} of {run.path}", file=sys.stderr)
        for i, opt in enumerate(optimizers_of(model)):
            if f"schedule_{i}" in planned and opt._learning_rate.continue_to(int(opt.iterations),
                                                                              planned[f"schedule_{i}"]):
                print(f"learning-rate schedule: continues from {float(opt._learning_rate(opt.iterations)):.3g} "
                      f"at step {int(opt.iterations)} to its end at step {planned[f'schedule_{i}']}",
                      file=sys.stderr)
    verbose = _verbose() if verbose is None else verbose
    one_epoch = _OneEpoch()
    with StopOnInterrupt() as interrupt:
        for epoch in range(start, epochs):
            tic = time.perf_counter()
            data = make_data(epoch)
            prepare_multi_worker(model, data)
            result = model.fit(data, epochs=epochs, initial_epoch=epoch,
                               validation_data=validation_data, steps_per_epoch=steps_per_epoch,
                               callbacks=[one_epoch], verbose=verbose, shuffle=False)
            logs = {"epoch": epoch + 1, "time_s": round(time.perf_counter() - tic, 3)}
            logs.update({k: float(v[-1]) for k, v in result.history.items()})
            if "loss" in logs:
                check_finite(logs["loss"], epoch, diverged_advice)
            if on_epoch_end is not None:
                logs.update(on_epoch_end(epoch, logs) or {})
            history = [h for h in history if h["epoch"] < logs["epoch"]] + [logs]
            run.log_epoch(logs)
            run.save_checkpoint(epoch + 1, state)
            if interrupt.requested:
                run.interrupted = True
                print(f"stopped after epoch {epoch + 1}; continue with --resume --run-dir {run.path}",
                      file=sys.stderr)
                break
    if save_model and run.chief and history:
        save_keras_model(model, run.file("model.keras"))
        from common.plots import learning_curves

        learning_curves(history, run.file("curves.png"))
    return history


def save_keras_model(model, path):
    """Save the whole model as a .keras file atomically."""
    with atomic_path(path) as tmp:
        model.save(tmp)
