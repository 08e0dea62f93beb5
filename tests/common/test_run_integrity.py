"""A failed command never changes an existing run; failed and unfinished runs are marked and never picked
silently (common.cli, common.runs, common.training), on the spine's toy model. Each failing case hashes
the run directory before and after."""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from common import cli, runs
from tests.cli_helpers import tree_digest
from tests.common import toy


def _err_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.fixture
def finished(tmp_path):
    """A completed 2-epoch toy run on a data folder (x.npy, y.npy)."""
    data = tmp_path / "data"
    data.mkdir()
    x, y = toy.load(None)
    np.save(data / "x.npy", x)
    np.save(data / "y.npy", y)
    run_dir = tmp_path / "run"
    assert toy.main(["train", "--epochs", "2", "--data-dir", str(data), "--run-dir", str(run_dir)]) == 0
    return run_dir


@pytest.mark.parametrize("argv, message", [
    (["--hidden", "5"], "run was trained with --hidden 8; --resume keeps the run's settings (omit --hidden, "
                        "or start a new run with another --run-dir)"),
    (["--widths", "4,4"], "trained with --widths 3,2; --resume keeps the run's settings"),
    (["--optimizer", "sgd"], "trained with --optimizer adam"),
    (["--epochs", "1"], "run has trained 2 epochs already; --epochs 1 is fewer (pass --epochs above 2"),
    ([], "run is complete (2 of 2 epochs); pass --epochs above 2 to train longer"),
    (["--epochs", "2"], "run is complete (2 of 2 epochs)"),
    (["--epochs", "4", "--demo"], "run was trained on --data-dir"),
    (["--epochs", "4", "--data-dir", "."], "run was trained on --data-dir"),
])
def test_refused_resume_leaves_the_run_byte_identical(finished, argv, message, capsys):
    before = tree_digest(finished)
    capsys.readouterr()
    assert toy.main(["train", "--resume", "--run-dir", str(finished), *argv]) == 2
    assert message.replace("run ", f"{finished} ", 1) in _err_line(capsys)
    assert tree_digest(finished) == before


def test_resume_on_changed_data_files_is_refused(finished, capsys):
    x = np.load(finished.parent / "data" / "x.npy")  # the fingerprint reads names and sizes, not contents
    np.save(finished.parent / "data" / "x.npy", x[:100])
    before = tree_digest(finished)
    capsys.readouterr()
    assert toy.main(["train", "--resume", "--epochs", "3", "--run-dir", str(finished)]) == 2
    assert "changed since" in _err_line(capsys) and tree_digest(finished) == before


def test_a_run_of_another_module_is_refused_by_name(finished, capsys):
    before = tree_digest(finished)
    commands = toy.COMMANDS
    for argv in (["train", "--resume", "--epochs", "3"], ["evaluate"]):
        capsys.readouterr()
        assert cli.main("other", toy.ToyConfig, commands, argv=[*argv, "--run-dir", str(finished)]) == 2
        line = _err_line(capsys)
        assert f"{finished} was written by tests.common.toy; use python -m tests.common.toy {argv[0]}" in line
    assert tree_digest(finished) == before


def test_resume_that_fails_on_its_checkpoints_writes_nothing(finished, capsys):
    for checkpoint in runs.checkpoint_dirs(finished):
        state = next(checkpoint.glob("state.data-*"))
        state.write_bytes(state.read_bytes()[:10])
    before = tree_digest(finished)
    capsys.readouterr()
    assert toy.main(["train", "--resume", "--epochs", "3", "--run-dir", str(finished)]) == 1
    assert "no intact checkpoint" in _err_line(capsys)
    assert tree_digest(finished) == before


def test_a_new_run_into_an_existing_run_is_refused(finished, capsys):
    shutil.rmtree(finished / "checkpoints")  # even a run without checkpoints keeps its files
    before = tree_digest(finished)
    capsys.readouterr()
    assert toy.main(["train", "--run-dir", str(finished)]) == 2
    assert "already holds a run of tests.common.toy; pass --resume" in _err_line(capsys)
    assert tree_digest(finished) == before


def test_run_dir_that_is_a_file_or_cannot_be_written_is_one_line(tmp_path, capsys):
    Path("a-file").write_text("x")
    assert toy.main(["train", "--run-dir", "a-file"]) == 1
    assert _err_line(capsys).endswith("--run-dir a-file is a file, not a folder; name a folder (it is created "
                                      "if missing)")
    assert Path("a-file").read_text() == "x"
    assert toy.main(["evaluate", "--run-dir", "a-file"]) == 2
    assert "--run-dir a-file is a file, not a run directory" in _err_line(capsys)
    assert toy.main(["train", "--run-dir", "/proc/x"]) == 1
    assert "--run-dir /proc/x cannot be written" in _err_line(capsys)


def test_a_new_run_that_fails_before_writing_leaves_no_folder(tmp_path, capsys):
    assert toy.main(["train", "--data-dir", str(tmp_path / "missing")]) == 1
    assert "x.npy not found" in _err_line(capsys)
    assert not list(Path("runs/toy").glob("*"))


def test_diverged_run_is_marked_failed_and_evaluate_takes_the_newest_completed_run(capsys):
    assert toy.main(["train", "--epochs", "2", "--run-dir", "runs/toy/1-good"]) == 0
    capsys.readouterr()
    assert toy.main(["train", "--optimizer", "sgd", "--lr", "1e6", "--run-dir", "runs/toy/2-diverged"]) == 1
    line = _err_line(capsys)
    assert "training diverged in epoch 1 (loss" in line and line.endswith("; lower --lr")
    status = runs.read_status("runs/toy/2-diverged")
    assert status["state"] == "failed" and "diverged in epoch 1" in status["error"]
    assert not runs.checkpoint_dirs("runs/toy/2-diverged")  # the diverged epoch wrote no checkpoint
    assert toy.main(["evaluate"]) == 0
    out, err = capsys.readouterr()
    assert err.strip() == "using runs/toy/1-good, the newest completed run; skipped 1 newer failed or unfinished"
    # named explicitly, an unfinished run is used with a warning
    assert toy.main(["train", "--epochs", "4", "--interrupt-at", "1", "--run-dir", "runs/toy/3-stopped"]) == 130
    assert runs.read_status("runs/toy/3-stopped")["state"] == "interrupted"
    capsys.readouterr()
    assert toy.main(["evaluate", "--run-dir", "runs/toy/3-stopped"]) == 0
    assert _err_line(capsys) == "warning: runs/toy/3-stopped is an interrupted run; using its newest checkpoint"
    # a killed process leaves "running": not completed, so never picked without --run-dir
    status = Path("runs/toy/3-stopped/status.json")
    status.write_text(json.dumps({"state": "running"}))
    assert toy.main(["evaluate"]) == 0
    assert "using runs/toy/1-good, the newest completed run; skipped 2" in _err_line(capsys)
    # --resume without --run-dir continues the newest run, finished or not, and completes it
    assert toy.main(["train", "--resume", "--epochs", "4", "--interrupt-at", "0"]) == 0
    assert runs.read_status("runs/toy/3-stopped") == {"state": "completed", "epochs_done": 4}
    assert toy.main(["evaluate"]) == 0
    assert "using runs/toy/3-stopped, the newest completed run" in capsys.readouterr().err


def test_only_failed_runs_give_one_line_naming_them(capsys):
    assert toy.main(["train", "--optimizer", "sgd", "--lr", "1e6", "--run-dir", "runs/toy/x"]) == 1
    capsys.readouterr()
    assert toy.main(["evaluate"]) == 2
    assert _err_line(capsys).endswith("no completed run under runs/toy (1 failed or unfinished); train first "
                                      "or pass --run-dir")


def test_a_finished_run_keeps_its_newest_checkpoints_only(tmp_path):
    assert toy.main(["train", "--epochs", "3", "--run-dir", "one"]) == 0
    assert [p.name for p in runs.checkpoint_dirs("one")] == ["epoch-0003"]
    assert toy.main(["train", "--epochs", "3", "--keep-checkpoints", "2", "--run-dir", "two"]) == 0
    assert [p.name for p in runs.checkpoint_dirs("two")] == ["epoch-0002", "epoch-0003"]
    # an interrupted run keeps what it needs to resume from any of its last epochs
    assert toy.main(["train", "--epochs", "5", "--interrupt-at", "4", "--run-dir", "three"]) == 130
    assert [p.name for p in runs.checkpoint_dirs("three")] == ["epoch-0002", "epoch-0003", "epoch-0004"]


def test_evaluate_without_checkpoints_uses_the_final_model(finished, capsys):
    shutil.rmtree(finished / "checkpoints")
    capsys.readouterr()
    assert toy.main(["evaluate", "--run-dir", str(finished)]) == 0
    assert _err_line(capsys).startswith(f"no intact checkpoint in {finished / 'checkpoints'}; using the final "
                                        "weights in")


def test_old_runs_without_status_count_as_completed_when_they_have_their_model(finished):
    os.remove(finished / "status.json")
    assert runs.read_status(finished) == {"state": "completed"}
    os.remove(finished / "model.keras")
    assert runs.read_status(finished) == {"state": "running"}
    config = json.loads((finished / "config.json").read_text())
    del config["module"]
    assert runs.module_of(config) == "tests.common.toy"  # from the recorded command line
