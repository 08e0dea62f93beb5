"""Every recsys trainer's run: plain `evaluate` reads the data the run was trained on, and a run
resumed with dropout (AutoRec, Caser) ends with the weights of an uninterrupted run."""
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from recsys import autorec, caser, deepfm, fm, mf, neumf
from recsys import data as rd
from tests.cli_helpers import run

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


def _final_weights(run_dir):
    return keras.models.load_model(Path(run_dir) / "model.keras").get_weights()


@pytest.mark.parametrize("module, epochs, extra", [(autorec, 3, []), (caser, 2, ["--batch-size", 1024])])
def test_resumed_run_with_dropout_equals_uninterrupted_run(module, epochs, extra, capsys):
    assert module.Config().dropout > 0  # dropout is on by default: resuming must continue its random stream
    code, full, err = run(module.main, ["train", "--demo", *extra, "--epochs", epochs, "--run-dir", "full"],
                          capsys)
    assert code == 0, err
    code, _, err = run(module.main, ["train", "--demo", *extra, "--epochs", 1, "--run-dir", "part"], capsys)
    assert code == 0, err
    code, resumed, err = run(module.main, ["train", "--resume", "--epochs", epochs, "--run-dir", "part"], capsys)
    assert code == 0 and "resumed from epoch 1" in err, err
    for a, b in zip(_final_weights("full"), _final_weights("part"), strict=True):
        np.testing.assert_array_equal(a, b)
    assert resumed == {**full, "run_dir": "part"}
