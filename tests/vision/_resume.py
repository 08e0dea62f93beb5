"""The learning-rate schedule on resume, checked through a trainer's CLI (SSD and FCN share it)."""
import json
import shutil
import signal

import numpy as np
import pytest

from common import training
from tests.cli_helpers import run


def _metrics(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


def _interrupt_after(monkeypatch, epochs_done):
    """Make `training.fit` get a Ctrl-C at the end of epoch `epochs_done` (as a user would)."""
    real_fit = training.fit

    def fit(*args, on_epoch_end=None, **kwargs):
        def hook(epoch, logs):
            extra = on_epoch_end(epoch, logs) if on_epoch_end is not None else None
            if epoch + 1 == epochs_done:
                signal.raise_signal(signal.SIGINT)
            return extra
        return real_fit(*args, on_epoch_end=hook, **kwargs)

    monkeypatch.setattr(training, "fit", fit)


def check_cosine_resume(main, argv, steps_per_epoch, lr, alpha, tmp_path, capsys, monkeypatch):
    """Train 2 epochs straight; train 2 epochs stopped after 1 and resumed (the same run exactly);
    resume the stopped run with --epochs 4 (the schedule continues from the current learning rate,
    without a jump, down to alpha * lr at the new end). Returns the resumed 2-epoch run's directory."""
    straight, same, longer = tmp_path / "straight", tmp_path / "same", tmp_path / "longer"
    code, _, err = run(main, ["train", *argv, "--epochs", 2, "--run-dir", straight], capsys)
    assert code == 0, err
    with monkeypatch.context() as m:
        _interrupt_after(m, 1)
        code, result, err = run(main, ["train", *argv, "--epochs", 2, "--run-dir", same], capsys)
    assert code == 130 and result["interrupted"] is True, err
    shutil.copytree(same, longer)
    code, _, err = run(main, ["train", "--resume", "--run-dir", same], capsys)
    assert code == 0, err
    a, b = _metrics(straight), _metrics(same)
    assert [m["lr"] for m in b] == [m["lr"] for m in a]
    np.testing.assert_allclose([m["loss"] for m in b], [m["loss"] for m in a], rtol=1e-5)

    code, _, err = run(main, ["train", "--resume", "--epochs", 4, "--run-dir", longer], capsys)
    assert code == 0, err
    lrs = [m["lr"] for m in _metrics(longer)]
    before, end, k = lrs[0], alpha * lr, steps_per_epoch
    assert before == pytest.approx(a[0]["lr"])
    assert f"learning-rate schedule: continues from {before:.3g} at step {k} to its end at step {4 * k}" in err
    # From `before` at step k, cosine down to alpha * lr at step 4k: continuous, never rising (rebuilding the
    # decay over the new total, as before, jumped back up to 0.5 * (1 + cos(pi / 2)) = 0.5 of the peak).
    expected = [before] + [end + (before - end) * 0.5 * (1 + np.cos(np.pi * (e - 1) / 3)) for e in range(2, 5)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-5, atol=1e-9)
    assert lrs[-1] == pytest.approx(end, abs=1e-9)
    return same
