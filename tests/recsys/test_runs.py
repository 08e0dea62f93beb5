"""Every recsys trainer's run: plain `evaluate` reads the data the run was trained on, and a run
resumed with dropout (AutoRec, Caser) ends with the weights of an uninterrupted run (`resume_matches_uninterrupted`)."""
import json
from pathlib import Path

import pytest

from recsys import autorec, caser, deepfm, fm, mf, neumf
from recsys import data as rd
from tests.cli_helpers import resume_matches_uninterrupted, run

MOVIELENS = {"mf": (mf, ["rmse"]), "autorec": (autorec, ["rmse"]), "neumf": (neumf, ["auc", "hr_at_10"]),
             "caser": (caser, ["auc", "hr_at_10"])}
CTR = {"fm": (fm, ["auc", "logloss"]), "deepfm": (deepfm, ["auc", "logloss"])}


@pytest.mark.parametrize("name", sorted(MOVIELENS) + sorted(CTR))
def test_plain_evaluate_reads_what_train_read(name, tmp_path, capsys):
    """MovieLens models trained with --data-dir, CTR models with --demo (their other tests cover the other source)."""
    module, keys = {**MOVIELENS, **CTR}[name]
    if name in MOVIELENS:
        source = ["--data-dir", rd.generate_movielens(tmp_path / "ml", 40, 60, (8, 15), seed=1)]
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
