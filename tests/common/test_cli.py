"""common.cli: flags from the config dataclass, one-line errors with the documented exit codes."""
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common import cli
from tests.common import toy

ROOT = Path(__file__).resolve().parents[2]


def _one_line(text):
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


@pytest.mark.parametrize("argv,needle", [
    (["train", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["train", "--epochs", "abc"], "argument --epochs: invalid int value: 'abc'"),
    (["train", "--optimizer", "rmsprop"], "argument --optimizer: invalid choice: 'rmsprop'"),
    (["train", "--devices", "0"], "argument --devices: must be at least 1"),
    (["train", "--strategy", "ring"], "argument --strategy: invalid choice: 'ring'"),
    (["fly"], "invalid choice: 'fly'"),
])
def test_bad_usage_exits_2_with_one_line(argv, needle, capsys):
    with pytest.raises(SystemExit) as exit_info:
        toy.main(argv)
    assert exit_info.value.code == 2
    assert needle in _one_line(capsys.readouterr().err)


def test_out_of_range_config_value_exits_2(capsys):
    assert toy.main(["train", "--epochs", "0"]) == 2
    assert _one_line(capsys.readouterr().err).endswith("error: --epochs must be at least 1, got 0")
    assert toy.main(["train", "--lr", "-1"]) == 2


@dataclasses.dataclass
class _Bounded(cli.TrainConfig):
    epochs: int = 3  # a new default keeps TrainConfig's bounds
    ratio: float = dataclasses.field(default=0.5, metadata=cli.bounds("(0, 1]", "a ratio"))
    decay: float = dataclasses.field(default=0.0, metadata=cli.bounds("[0, inf)"))
    count: int = dataclasses.field(default=2, metadata=cli.at_least(2))
    scale: float = dataclasses.field(default=1.0, metadata=cli.positive())


@pytest.mark.parametrize("values, message", [
    ({"epochs": 0}, "--epochs must be at least 1, got 0"),
    ({"lr": 0.0}, "--lr must be positive, got 0.0"),
    ({"ratio": 0.0}, "--ratio must be in (0, 1], got 0.0"),
    ({"ratio": 1.5}, "--ratio must be in (0, 1], got 1.5"),
    ({"decay": -0.1}, "--decay must be non-negative, got -0.1"),
    ({"count": 1}, "--count must be at least 2, got 1"),
    ({"scale": -2.0}, "--scale must be positive, got -2.0"),
])
def test_declared_bounds(values, message):
    with pytest.raises(cli.UsageError) as error:
        _Bounded(**values).validate()
    assert str(error.value) == message
    # the edges the intervals include pass
    _Bounded(ratio=1.0, decay=0.0, count=2, epochs=1).validate()


def test_bounds_reach_the_help_text():
    import argparse
    parser = argparse.ArgumentParser()
    cli.add_config_arguments(parser, _Bounded)
    assert "a ratio (default: 0.5, in (0, 1])" in " ".join(parser.format_help().split())
    with pytest.raises(ValueError):
        cli.bounds("[1, 0]")


def test_missing_data_directory_exits_1_with_one_line(tmp_path, capsys):
    assert toy.main(["train", "--data-dir", str(tmp_path / "nowhere")]) == 1
    line = _one_line(capsys.readouterr().err)
    assert "x.npy not found" in line and "nowhere" in line


def test_evaluate_without_a_run_is_a_usage_error(capsys):
    assert toy.main(["evaluate"]) == 2
    assert "no run found under runs/toy; train first" in _one_line(capsys.readouterr().err)
    assert toy.main(["evaluate", "--run-dir", "elsewhere"]) == 2
    assert "not a run directory" in _one_line(capsys.readouterr().err)


def test_too_many_devices_after_start_is_one_line(capsys):
    assert toy.main(["train", "--devices", "3"]) == 2
    assert "TensorFlow already started with 2 CPU device(s)" in _one_line(capsys.readouterr().err)


def test_global_batch_that_does_not_split_over_replicas_is_one_line(capsys):
    assert toy.main(["train", "--devices", "2", "--batch-size", "15"]) == 2
    assert "--batch-size 15 does not split evenly over 2 replicas" in _one_line(capsys.readouterr().err)


def _zero_target_data(tmp_path):
    """A --data-dir with the toy inputs and all-zero targets (so its mse differs from the demo data's)."""
    x, y = toy.load(None)
    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "x.npy", x)
    np.save(data / "y.npy", y * 0)
    return data


def test_evaluate_prints_metrics_json_on_the_last_line_of_the_newest_run(tmp_path, capsys):
    data = _zero_target_data(tmp_path)
    assert toy.main(["train", "--epochs", "3", "--devices", "2"]) == 0
    train_out = capsys.readouterr().out.strip().splitlines()[-1]
    assert toy.main(["evaluate"]) == 0
    on_train_data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert toy.main(["evaluate", "--data-dir", str(data)]) == 0
    on_zero_targets = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(json.loads(train_out)) == {"loss", "run_dir"}
    assert Path(json.loads(train_out)["run_dir"]) == cli.latest_run("tests.common.toy")
    assert on_train_data["mse"] < 1.0 < on_zero_targets["mse"]


def test_config_precedence_default_demo_saved_explicit():
    assert cli.build_config(toy.ToyConfig, {}).epochs == 4
    assert cli.build_config(toy.ToyConfig, {}, demo={"epochs": 2}).epochs == 2
    saved = {"epochs": 7, "hidden": 3, "command": "ignored"}
    assert cli.build_config(toy.ToyConfig, {}, {"epochs": 2}, saved).epochs == 7
    config = cli.build_config(toy.ToyConfig, {"epochs": 9}, {"epochs": 2}, saved)
    assert (config.epochs, config.hidden) == (9, 3)
    preset = {"hidden": 11, "lr": 0.5}
    config = cli.build_config(toy.ToyConfig, {"lr": 0.05}, {"hidden": 2}, None, preset)
    assert (config.hidden, config.lr) == (11, 0.05)  # preset over demo, explicit flag (even = default) over preset


def test_named_preset_flag(tmp_path):
    captured = []
    commands = {"train": cli.Command(lambda ctx: captured.append((ctx.config.hidden, ctx.config.lr)), "t",
                                     trains=True)}
    argv = ["train", "--preset", "wide", "--lr", "0.05", "--run-dir", str(tmp_path / "r")]
    assert cli.main("p", toy.ToyConfig, commands, argv=argv, presets={"wide": {"hidden": 64, "lr": 1.0}}) == 0
    assert captured == [(64, 0.05)]


def test_python_dash_m_is_quiet_and_exits_cleanly(tmp_path):
    """A real subprocess: no TensorFlow start-up noise, JSON on the last line."""
    proc = subprocess.run([sys.executable, "-c", "import sys; from tests.common import toy; sys.exit(toy.main())",
                           "train", "--epochs", "1", "--run-dir", str(tmp_path / "r")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "oneDNN" not in proc.stderr and "cuda" not in proc.stderr.lower()
    assert "loss" in json.loads(proc.stdout.strip().splitlines()[-1])


def test_commands_that_read_no_data_have_no_data_dir_flag(capsys):
    commands = {"solve": cli.Command(lambda ctx: {"ok": 1}, "solve", configurable=True, reads_data=False)}
    assert cli.main("sim", toy.ToyConfig, commands, argv=["solve", "--demo"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["ok"] == 1 and Path(result["run_dir"]).parent == Path("runs/test_cli")
    with pytest.raises(SystemExit) as exit_info:
        cli.main("sim", toy.ToyConfig, commands, argv=["solve", "--data-dir", "x"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --data-dir x" in _one_line(capsys.readouterr().err)


def _last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_abbreviated_flags_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        toy.main(["train", "--epoch", "2"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --epoch 2" in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize("seed", ["-5", "5000000000"])
def test_seed_out_of_range_is_one_line(seed, capsys):
    assert toy.main(["train", "--seed", seed]) == 2
    assert f"--seed must be in [0, 4294967295], got {seed}" in _one_line(capsys.readouterr().err)


def test_corrupt_config_json_is_one_line(tmp_path, capsys):
    run_dir = tmp_path / "r"
    assert toy.main(["train", "--epochs", "1", "--run-dir", str(run_dir)]) == 0
    (run_dir / "config.json").write_text('{"epochs": 1,')
    capsys.readouterr()
    assert toy.main(["evaluate", "--run-dir", str(run_dir)]) == 1
    assert "config.json is corrupt" in _one_line(capsys.readouterr().err)


def test_ctrl_c_exits_130_with_the_json_marked_interrupted(tmp_path, capsys):
    run_dir = tmp_path / "r"
    assert toy.main(["train", "--epochs", "4", "--interrupt-at", "2", "--run-dir", str(run_dir)]) == 130
    result = _last_json(capsys)
    assert result["interrupted"] is True and result["run_dir"] == str(run_dir)
    assert toy.main(["train", "--resume", "--run-dir", str(run_dir), "--interrupt-at", "0"]) == 0
    assert "interrupted" not in _last_json(capsys)


def test_evaluate_reads_the_data_the_run_was_trained_on(tmp_path, capsys):
    data = _zero_target_data(tmp_path)
    run_dir = tmp_path / "r"
    assert toy.main(["train", "--epochs", "3", "--data-dir", str(data), "--run-dir", str(run_dir)]) == 0
    saved = json.loads((run_dir / "config.json").read_text())["data"]
    assert saved["source"] == "dir" and saved["path"] == str(data.resolve()) and len(saved["fingerprint"]) == 12
    capsys.readouterr()
    assert toy.main(["evaluate", "--run-dir", str(run_dir)]) == 0  # no --data-dir: the training data
    out = capsys.readouterr()
    on_training_data = json.loads(out.out.strip().splitlines()[-1])
    assert out.err == ""
    assert toy.main(["evaluate", "--run-dir", str(run_dir), "--demo"]) == 0  # other data: said in one line
    out = capsys.readouterr()
    assert _one_line(out.err) == (f"note: the run was trained on --data-dir {data.resolve()}; "
                                  "this evaluate reads --demo data")
    assert json.loads(out.out.strip().splitlines()[-1])["mse"] > on_training_data["mse"]
    np.save(data / "extra.npy", np.zeros(3))
    assert toy.main(["evaluate", "--run-dir", str(run_dir)]) == 0
    assert f"note: the files in {data.resolve()} changed since the run was trained on them" in capsys.readouterr().err


def test_list_flags_are_parsed_once_and_saved(tmp_path, capsys):
    run_dir = tmp_path / "r"
    seen = []
    commands = {**toy.COMMANDS, "show": cli.Command(lambda ctx: seen.append(ctx.config.widths), "show")}
    assert cli.main("w", toy.ToyConfig, commands, argv=["train", "--epochs", "1", "--widths", "8,4,2",
                                                       "--run-dir", str(run_dir)]) == 0
    assert json.loads((run_dir / "config.json").read_text())["widths"] == [8, 4, 2]
    assert cli.main("w", toy.ToyConfig, commands, argv=["show", "--run-dir", str(run_dir)]) == 0
    assert seen == [(8, 4, 2)]
    with pytest.raises(SystemExit):
        toy.main(["train", "--widths", "8,x"])
    assert "--widths must be comma-separated positive integers like 64,32,16, got '8,x'" in capsys.readouterr().err


def test_help_shows_descriptions_choices_and_ranges(capsys):
    with pytest.raises(SystemExit):
        toy.main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--optimizer {adam,sgd} optimizer (default: adam)" in text
    assert "--epochs EPOCHS passes over the training data (default: 4, in [1, inf))" in text
    assert "--seed SEED random seed for initialisation, shuffling and sampling (default: 0, in [0, 4294967295])" in text
    assert "--demo offline: the small generated dataset and epochs=2" in text


def test_the_python_api_runs_the_commands_with_their_checks(tmp_path, capsys):
    """cli.Spec: train(config, **flags) -> the metrics dict, evaluate(run_dir) -> the same numbers, load(run_dir)
    -> the trained model; bad options raise the suite's errors instead of exiting."""
    import keras

    from common.errors import UsageError

    spec = cli.Spec("tests.common.toy", "toy model", toy.ToyConfig, toy.COMMANDS, {"epochs": 2})
    train, evaluate = spec.api("train"), spec.api("evaluate")
    trained = train(toy.ToyConfig(hidden=5, widths=(4, 4)), demo=True, run_dir=str(tmp_path / "r"))
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["hidden"] == 5 and config["widths"] == [4, 4] and config["epochs"] == 2  # the demo's epochs
    assert config["command"].startswith("python -m tests.common.toy train --hidden=5 --widths=4,4 --demo --run-dir=")
    scores = evaluate(str(tmp_path / "r"))
    model = spec.load(str(tmp_path / "r"))
    x, y = toy.load(None)
    assert scores["mse"] == pytest.approx(float(keras.ops.mean((model.predict(x, verbose=0) - y) ** 2)), rel=1e-5)
    assert trained["loss"] > 0 and trained["run_dir"] == str(tmp_path / "r")
    with pytest.raises(UsageError, match="--lr must be positive"):
        train(toy.ToyConfig(lr=-1.0))
    with pytest.raises(UsageError, match="unknown option 'epoch'; python -m tests.common.toy train takes"):
        train(epoch=3)
    with pytest.raises(UsageError, match="already holds a run"):
        train(run_dir=str(tmp_path / "r"))
    assert not list(Path("runs").glob("toy/*"))  # nothing written by the failed calls
    # a Config field given as a keyword holds under demo=True even at its dataclass default
    train(demo=True, epochs=4, run_dir=str(tmp_path / "k"))
    assert json.loads((tmp_path / "k" / "config.json").read_text())["epochs"] == 4


def test_api_options_become_flags_by_name_or_destination():
    import argparse

    parser = cli._RaisingParser(prog="p")
    parser.add_argument("--episodes", dest="evaluate_episodes", type=int)
    parser.add_argument("--observation")
    parser.add_argument("--fast", action=argparse.BooleanOptionalAction)
    parser.add_argument("images", nargs="+")
    assert cli._option_flags(parser, {"episodes": 5, "observation": "-0.1,0.2", "fast": False,
                                      "images": ["a.png", "b.png"]}) == \
        ["--episodes=5", "--observation=-0.1,0.2", "--no-fast", "--", "a.png", "b.png"]
    assert vars(parser.parse_args(cli._option_flags(parser, {"evaluate_episodes": 3, "images": ["x"]}))) == \
        {"evaluate_episodes": 3, "observation": None, "fast": None, "images": ["x"]}
    with pytest.raises(cli.UsageError, match="unknown option 'episode'"):
        cli._option_flags(parser, {"episode": 1})
