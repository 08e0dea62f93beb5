"""DeepFM on streamed Criteo and MF on MovieLens under MultiWorkerMirroredStrategy: two workers on 127.0.0.1
(TF_CONFIG); DeepFM's each read their own blocks. Both end with the same model."""
import json

import pytest

from recsys import criteo
from tests.cli_helpers import run_workers


@pytest.mark.slow
def test_two_workers_train_deepfm_on_their_own_blocks(tmp_path):
    data = criteo.generate_criteo(tmp_path / "criteo" / "train.txt", 20_000)
    criteo.prepare_criteo(data)  # once, into this test's $DLSUITE_CACHE, before the workers (same env) read it
    outputs = run_workers(
        lambda index: ["recsys.deepfm", "train", "--dataset", "criteo", "--data-dir", data.parent, "--epochs", 2,
                       "--batch-size", 512, "--strategy", "multi-worker", "--run-dir", tmp_path / f"run{index}"])
    results = [json.loads([line for line in out.splitlines() if line.startswith("{")][-1]) for out in outputs]
    assert results[0]["auc"] == pytest.approx(results[1]["auc"], abs=1e-6) and results[0]["auc"] > 0.6
    assert (tmp_path / "run0" / "model.keras").exists()  # the chief writes the run


@pytest.mark.slow
def test_two_workers_train_mf_with_per_rating_sgd(tmp_path):
    # the sgd default under MultiWorkerMirroredStrategy: no XLA, one step per execution, the workers'
    # IndexedSlices gathered, so both end with the same tables and the same test RMSE
    outputs = run_workers(
        lambda index: ["recsys.mf", "train", "--demo", "--epochs", 2, "--strategy", "multi-worker",
                       "--run-dir", tmp_path / f"run{index}"])
    results = [json.loads([line for line in out.splitlines() if line.startswith("{")][-1]) for out in outputs]
    assert results[0]["rmse"] == pytest.approx(results[1]["rmse"], abs=1e-6) and results[0]["rmse"] < 0.85
