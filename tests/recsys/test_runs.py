"""Every recsys trainer's run: plain `evaluate` reads the data the run was trained on, and a run
resumed with dropout (AutoRec, Caser) ends with the weights of an uninterrupted run (`resume_matches_uninterrupted`)."""
import json
from pathlib import Path

import pytest

from recsys import autorec, caser, deepfm, fm, mf, neumf
from recsys.movielens import generate_movielens
from tests.cli_helpers import resume_matches_uninterrupted, run, tree_digest

MOVIELENS = {"mf": (mf, ["rmse"]), "autorec": (autorec, ["rmse"]), "neumf": (neumf, ["auc", "hr_at_10"]),
             "caser": (caser, ["auc", "hr_at_10"])}
CTR = {"fm": (fm, ["auc", "logloss"]), "deepfm": (deepfm, ["auc", "logloss"])}


@pytest.mark.parametrize("name", sorted(MOVIELENS) + sorted(CTR))
def test_plain_evaluate_reads_what_train_read(name, tmp_path, capsys):
    """MovieLens models trained with --data-dir, CTR models with --demo (their other tests cover the other source)."""
    module, keys = {**MOVIELENS, **CTR}[name]
    if name in MOVIELENS:
        source = ["--data-dir", generate_movielens(tmp_path / "ml", 40, 60, (8, 15), seed=1)]
        expected = {"source": "dir", "path": str((tmp_path / "ml").resolve())}
    else:
        source = ["--demo", "--batch-size", 4096]
        expected = {"source": "demo"}
    code, trained, err = run(module.main, ["train", *source, "--epochs", 1], capsys)
    assert code == 0, err
    assert Path(trained["run_dir"]).parent == Path("runs", name)
    recorded = json.loads(Path(trained["run_dir"], "config.json").read_text())["data"]
    assert {k: recorded[k] for k in expected} == expected
    code, evaluated, err = run(module.main, ["evaluate"], capsys)  # the newest run, no data flags
    assert code == 0, err
    for key in keys:
        assert evaluated[key] == pytest.approx(trained[key], abs=1e-6), key


@pytest.mark.parametrize("module, epochs, extra", [(autorec, 3, []), (caser, 2, ["--batch-size", 1024])])
def test_resumed_run_with_dropout_equals_uninterrupted_run(module, epochs, extra, capsys):
    assert module.Config().dropout > 0  # dropout is on by default: resuming must continue its random stream
    resume_matches_uninterrupted(module.main, ["--demo", *extra], epochs, capsys)


def test_failed_resumes_leave_the_run_byte_identical(capsys):
    """The issue's cases: another model's --resume, another architecture, fewer epochs than done. Each is one
    line naming the fix, before any data is read, and the MF run stays usable."""
    code, trained, err = run(mf.main, ["train", "--demo", "--epochs", 2, "--run-dir", "mf-run"], capsys)
    assert code == 0, err
    before = tree_digest("mf-run")
    cases = [(neumf.main, ["--demo"], "mf-run was written by recsys.mf; use python -m recsys.mf train --resume "
                                      "--run-dir mf-run"),
             (mf.main, ["--factors", 32], "mf-run was trained with --factors 16; --resume keeps the run's settings "
                                          "(omit --factors, or start a new run with another --run-dir)"),
             (mf.main, ["--epochs", 1], "mf-run has trained 2 epochs already; --epochs 1 is fewer")]
    for main, argv, message in cases:
        code, _, err = run(main, ["train", "--resume", "--run-dir", "mf-run", *argv], capsys)
        assert code == 2 and err.count("\n") == 1 and message in err, err
        assert tree_digest("mf-run") == before
    code, evaluated, err = run(mf.main, ["evaluate", "--run-dir", "mf-run"], capsys)
    assert code == 0 and evaluated["rmse"] == pytest.approx(trained["rmse"], abs=1e-6), err


def test_mf_defaults_do_not_diverge_on_a_few_hundred_ratings(tmp_path, capsys):
    """259 ratings, fewer than one default sgd batch of 8,192: full batches repeated each rating 32 times in
    one summed step and diverged in epoch 7; batches of the training ratings train to a finite fit."""
    path = generate_movielens(tmp_path / "ml", 30, 40, (6, 12), seed=0)
    ratings = sum(1 for _ in open(Path(path) / "u.data"))
    assert 200 <= ratings <= 400
    code, result, err = run(mf.main, ["train", "--data-dir", path], capsys)
    assert code == 0, err
    assert "sgd takes batches of" in err
    assert result["loss"] < 1.0 and result["val_rmse"] < 1.5  # ratings 1-5: a diverged or untrained fit is far off


def test_a_resume_that_fails_on_its_checkpoints_leaves_the_run_byte_identical(capsys):
    """Past the flag checks, a resume whose checkpoints are all damaged writes nothing: not even ids.npz, which it
    used to rewrite with the same bytes (its modification time shows the write)."""
    code, _, err = run(mf.main, ["train", "--demo", "--epochs", 1, "--run-dir", "mf-run"], capsys)
    assert code == 0, err
    for state in Path("mf-run/checkpoints").glob("*/state.data-*"):
        state.write_bytes(state.read_bytes()[:10])
    before, written = tree_digest("mf-run"), Path("mf-run/ids.npz").stat().st_mtime_ns
    code, _, err = run(mf.main, ["train", "--resume", "--epochs", 2, "--run-dir", "mf-run"], capsys)
    assert code == 1 and "no intact checkpoint" in err, err
    assert tree_digest("mf-run") == before and Path("mf-run/ids.npz").stat().st_mtime_ns == written
