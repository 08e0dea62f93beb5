"""Two MultiWorkerMirroredStrategy workers on 127.0.0.1 train the toy model and agree."""
import json

import numpy as np

from tests.cli_helpers import run_workers


def test_two_workers_train_the_same_model(tmp_path):
    run_dir = tmp_path / "run"
    run_workers(lambda index: ["tests.common.mw_worker", tmp_path / f"w{index}.npz", run_dir], timeout=240)
    w0, w1 = (np.load(tmp_path / f"w{i}.npz") for i in range(2))
    assert int(w0["replicas"]) == int(w1["replicas"]) == 2
    weights = [k for k in w0.files if k.startswith("arr_")]
    for key in weights:
        np.testing.assert_allclose(w0[key], w1[key], rtol=1e-6)
    np.testing.assert_allclose(w0["losses"], w1["losses"], rtol=1e-6)
    assert w0["losses"][-1] < 0.5 * w0["losses"][0]
    # Only the chief (worker 0) wrote the run directory.
    assert (run_dir / "checkpoints" / "epoch-0003").is_dir()
    assert len(json.loads((run_dir / "metrics.json").read_text())) == 3
