"""common.training: run directories, atomic checkpoints, exact resume, Ctrl-C."""
import json
import signal

import keras
import numpy as np
import pytest
import tensorflow as tf

from common import training
from common.errors import UsageError
from tests.common import toy


def _metrics(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


def test_resumed_run_ends_with_the_same_metrics_as_an_uninterrupted_one(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert toy.main(["train", "--epochs", "4", "--run-dir", str(straight)]) == 0
    assert toy.main(["train", "--epochs", "2", "--run-dir", str(split)]) == 0
    assert toy.main(["train", "--resume", "--epochs", "4", "--run-dir", str(split)]) == 0
    a, b = _metrics(straight), _metrics(split)
    assert [m["epoch"] for m in b] == [1, 2, 3, 4]
    np.testing.assert_allclose([m["loss"] for m in a], [m["loss"] for m in b], rtol=1e-6)
    assert a[-1]["loss"] < a[0]["loss"]
    # Same final weights, read back from the final checkpoints.
    models = [toy.build(toy.ToyConfig()) for _ in range(2)]
    for model, run_dir in zip(models, (straight, split)):
        assert training.Run(run_dir, resume=True).restore({"model": model}) == 4
    for w1, w2 in zip(models[0].get_weights(), models[1].get_weights()):
        np.testing.assert_allclose(w1, w2, rtol=1e-6)


def test_run_directory_contents(tmp_path):
    run_dir = tmp_path / "run"
    assert toy.main(["train", "--epochs", "2", "--hidden", "5", "--run-dir", str(run_dir)]) == 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["hidden"] == 5 and config["epochs"] == 2 and config["replicas"] == 1
    assert config["command"].endswith("train --epochs 2 --hidden 5 --run-dir " + str(run_dir))
    assert [c.name for c in training.Run(run_dir, resume=True).checkpoints()] == ["epoch-0002"]  # a finished run
    assert json.loads((run_dir / "status.json").read_text()) == {"state": "completed", "epochs_done": 2}
    assert config["module"] == "tests.common.toy"
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert (run_dir / "curves.png").read_bytes()[:4] == b"\x89PNG"
    reloaded = keras.models.load_model(run_dir / "model.keras")
    x, _ = toy.load(None)
    restored = toy.build(toy.ToyConfig(hidden=5))
    training.Run(run_dir, resume=True).restore({"model": restored})
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), restored.predict(x, verbose=0), rtol=1e-6)


def test_failed_checkpoint_write_leaves_earlier_checkpoints_intact(tmp_path, monkeypatch):
    run = training.Run(tmp_path / "run")
    model = toy.build(toy.ToyConfig())
    run.save_checkpoint(1, training.training_state(model))
    before = model.get_weights()

    def broken_write(self, prefix):
        with open(prefix + ".index", "w") as f:
            f.write("half")
        raise OSError("disk full")

    model.layers[0].kernel.assign(np.zeros_like(before[0]))
    monkeypatch.setattr(tf.train.Checkpoint, "write", broken_write)
    with pytest.raises(OSError, match="disk full"):
        run.save_checkpoint(2, training.training_state(model))
    monkeypatch.undo()
    assert [c.name for c in run.checkpoints()] == ["epoch-0001"]
    fresh = toy.build(toy.ToyConfig())
    assert run.restore({"model": fresh}) == 1
    np.testing.assert_allclose(fresh.get_weights()[0], before[0])


def test_checkpoints_keep_the_newest_three(tmp_path):
    run = training.Run(tmp_path / "run")
    model = toy.build(toy.ToyConfig())
    for epoch in range(1, 6):
        run.save_checkpoint(epoch, {"model": model})
    assert [c.name for c in run.checkpoints()] == ["epoch-0003", "epoch-0004", "epoch-0005"]


def test_ctrl_c_stops_after_the_epoch_checkpoint_and_resume_finishes(tmp_path):
    cfg = toy.ToyConfig(epochs=4)
    x, y = toy.load(None)
    model = toy.build(cfg)
    run = training.Run(tmp_path / "run")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    interrupt = lambda epoch, logs: signal.raise_signal(signal.SIGINT) if epoch == 1 else None
    history = training.fit(model, data, run, epochs=4, on_epoch_end=interrupt, verbose=0)
    assert [m["epoch"] for m in history] == [1, 2]
    assert run.latest_checkpoint().name == "epoch-0002"
    resumed = toy.build(cfg)
    history = training.fit(resumed, data, training.Run(run.path, resume=True), epochs=4, verbose=0)
    assert [m["epoch"] for m in history] == [1, 2, 3, 4]


def test_on_epoch_end_metrics_are_recorded(tmp_path):
    x, y = toy.load(None)
    model = toy.build(toy.ToyConfig())
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    extra = lambda epoch, logs: {"val_score": 10.0 * epoch, "double_loss": 2 * logs["loss"]}
    history = training.fit(model, data, training.Run(tmp_path / "r"), epochs=2, on_epoch_end=extra, verbose=0)
    assert [h["val_score"] for h in history] == [0.0, 10.0]
    assert history[1]["double_loss"] == pytest.approx(2 * history[1]["loss"])


def test_run_refuses_to_overwrite_or_resume_nothing(tmp_path):
    with pytest.raises(UsageError, match="no checkpoint"):
        training.Run(tmp_path / "empty", resume=True)
    run = training.Run(tmp_path / "run")
    run.save_checkpoint(1, {"model": toy.build(toy.ToyConfig())})
    with pytest.raises(UsageError, match="already holds checkpoints; pass --resume"):
        training.Run(tmp_path / "run")


class ListMLP(keras.Model):
    """Hidden layers kept in a Python list: TensorFlow's object graph does not see them."""

    def __init__(self, widths=(8, 8)):
        super().__init__()
        self.hidden = [keras.layers.Dense(w, activation="tanh") for w in widths]
        self.out = keras.layers.Dense(1)

    def call(self, x):
        for layer in self.hidden:
            x = layer(x)
        return self.out(x)


def _list_mlp(widths=(8, 8)):
    model = ListMLP(widths)
    model.compile(keras.optimizers.Adam(0.05), "mse")
    return model


def test_layers_in_python_lists_are_checkpointed(tmp_path):
    x, y = toy.load(None)
    trained = _list_mlp()
    history = training.fit(trained, tf.data.Dataset.from_tensor_slices((x, y)).batch(16),
                           training.Run(tmp_path / "r"), epochs=2, verbose=0)
    restored = _list_mlp()
    restored(x[:1])
    assert training.Run(tmp_path / "r", resume=True).restore({"model": restored}) == 2
    for a, b in zip(trained.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(a, b)
    mse = float(np.mean((restored.predict(x, verbose=0) - y) ** 2))
    assert mse == pytest.approx(history[-1]["loss"], rel=0.5)  # trained weights, not fresh ones


def test_restoring_into_other_sizes_or_an_unbuilt_model_is_one_line(tmp_path):
    from common.errors import DlsuiteError

    x, _ = toy.load(None)
    model = _list_mlp((8, 8))
    model(x[:1])
    run = training.Run(tmp_path / "r")
    run.save_checkpoint(1, {"model": model})
    other = _list_mlp((8, 16))
    other(x[:1])
    with pytest.raises(DlsuiteError) as err:
        run.restore({"model": other})
    assert "other shapes" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(DlsuiteError, match="no weights yet"):
        run.restore({"model": _list_mlp()})
    (run.latest_checkpoint() / "weights.json").unlink()
    with pytest.raises(DlsuiteError, match="has no weights.json"):
        run.restore({"model": model})


def test_resume_builds_a_lazily_built_model_first(tmp_path):
    x, y = toy.load(None)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    training.set_seed(0)
    straight = training.fit(_list_mlp(), data, training.Run(tmp_path / "a"), epochs=3, verbose=0)
    training.set_seed(0)
    training.fit(_list_mlp(), data, training.Run(tmp_path / "b"), epochs=1, verbose=0)
    unbuilt = _list_mlp()
    assert not unbuilt.weights
    resumed = training.fit(unbuilt, data, training.Run(tmp_path / "b", resume=True), epochs=3, verbose=0)
    assert [h["epoch"] for h in resumed] == [1, 2, 3]
    np.testing.assert_allclose([h["loss"] for h in resumed], [h["loss"] for h in straight], rtol=1e-5)


def _final_weights(run_dir, **config):
    model = toy.build(toy.ToyConfig(**config))
    training.Run(run_dir, resume=True).restore({"model": model})
    return model.get_weights()


def test_resume_with_dropout_continues_the_dropout_masks(tmp_path):
    """Checkpoints hold the dropout SeedGenerator state: a resumed run ends on the uninterrupted weights."""
    straight, split, other = tmp_path / "straight", tmp_path / "split", tmp_path / "other"
    assert toy.main(["train", "--epochs", "4", "--dropout", "0.5", "--run-dir", str(straight)]) == 0
    assert toy.main(["train", "--epochs", "2", "--dropout", "0.5", "--run-dir", str(split)]) == 0
    assert toy.main(["train", "--resume", "--epochs", "4", "--run-dir", str(split)]) == 0
    assert toy.main(["train", "--epochs", "4", "--dropout", "0.5", "--seed", "1", "--run-dir", str(other)]) == 0
    a, b, c = (_final_weights(d, dropout=0.5) for d in (straight, split, other))
    for w1, w2 in zip(a, b):
        np.testing.assert_allclose(w1, w2, rtol=1e-6, atol=1e-7)
    assert max(float(np.abs(w1 - w3).max()) for w1, w3 in zip(a, c)) > 1e-3  # the test can tell runs apart


def test_cosine_schedule_resumed_with_more_epochs_continues_without_a_jump(tmp_path, capsys):
    same, longer, straight = tmp_path / "same", tmp_path / "longer", tmp_path / "straight"
    flags = ["--cosine", "--lr", "0.1", "--batch-size", "16"]  # 8 steps an epoch
    assert toy.main(["train", "--epochs", "4", *flags, "--run-dir", str(straight)]) == 0
    assert toy.main(["train", "--epochs", "4", *flags, "--interrupt-at", "2", "--run-dir", str(same)]) == 130
    assert toy.main(["train", "--resume", "--run-dir", str(same), "--interrupt-at", "0"]) == 0
    np.testing.assert_allclose([m["loss"] for m in _metrics(straight)], [m["loss"] for m in _metrics(same)], rtol=1e-6)

    assert toy.main(["train", "--epochs", "2", *flags, "--run-dir", str(longer)]) == 0
    lr_at_2 = _metrics(longer)[-1]["lr"]
    assert lr_at_2 == pytest.approx(0.01, rel=1e-4)  # schedule over 16 steps ended at alpha * lr
    capsys.readouterr()
    assert toy.main(["train", "--resume", "--epochs", "6", "--run-dir", str(longer)]) == 0
    assert "learning-rate schedule: continues from 0.01 at step 16 to its end at step 48" in capsys.readouterr().err
    lrs = [m["lr"] for m in _metrics(longer)]
    # From 0.01 at step 16, cosine down to alpha * 0.1 = 0.01 over 32 more steps: it stays at 0.01.
    np.testing.assert_allclose(lrs[2:], [0.01] * 4, rtol=1e-4)


def test_cosine_schedule_continue_to_is_continuous():
    schedule = training.CosineSchedule(1.0, 100, alpha=0.0)
    before = float(schedule(40))
    assert before == pytest.approx(0.5 * (1 + np.cos(np.pi * 0.4)))
    assert not schedule.continue_to(40, 100)  # same end: unchanged, exactly the uninterrupted schedule
    assert schedule.continue_to(40, 200)
    assert float(schedule(40)) == pytest.approx(before)
    assert float(schedule(120)) == pytest.approx(before * 0.5 * (1 + np.cos(np.pi * 80 / 160)))
    assert float(schedule(200)) == pytest.approx(0.0, abs=1e-7)
    assert float(schedule(10)) == pytest.approx(before)  # steps before the restart hold the restart value


def _truncate(checkpoint):
    data = next(checkpoint.glob("state.data-*"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])


def test_damaged_newest_checkpoint_falls_back_to_the_newest_intact_one(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert toy.main(["train", "--epochs", "3", "--keep-checkpoints", "3", "--run-dir", str(run_dir)]) == 0
    _truncate(run_dir / "checkpoints" / "epoch-0003")
    capsys.readouterr()
    assert toy.main(["evaluate", "--run-dir", str(run_dir)]) == 0
    err = capsys.readouterr().err
    assert "checkpoint epoch-0003" in err and "is damaged; restored epoch-0002 instead" in err
    assert len(err.strip().splitlines()) == 1
    assert toy.main(["train", "--resume", "--epochs", "4", "--run-dir", str(run_dir)]) == 0
    assert [m["epoch"] for m in _metrics(run_dir)] == [1, 2, 3, 4]
    for checkpoint in (run_dir / "checkpoints").iterdir():
        _truncate(checkpoint)
    capsys.readouterr()
    # every checkpoint damaged: evaluate takes the final model.keras, in one line
    assert toy.main(["evaluate", "--run-dir", str(run_dir)]) == 0
    out, err = capsys.readouterr()
    assert err.strip() == (f"no intact checkpoint in {run_dir / 'checkpoints'}; using the final weights in "
                           f"{run_dir / 'model.keras'}")
    model = keras.models.load_model(run_dir / "model.keras")
    x, y = toy.load(None)
    assert json.loads(out.splitlines()[-1])["mse"] == pytest.approx(float(model.evaluate(x, y, verbose=0)), rel=1e-6)
    # ... and --resume, which needs the optimizer's state too, still refuses
    assert toy.main(["train", "--resume", "--epochs", "5", "--run-dir", str(run_dir)]) == 1
    assert "no intact checkpoint" in capsys.readouterr().err
    (run_dir / "model.keras").unlink()
    assert toy.main(["evaluate", "--run-dir", str(run_dir)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no intact checkpoint" in err and "Traceback" not in err
