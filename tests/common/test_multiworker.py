"""MultiWorkerMirroredStrategy workers on 127.0.0.1 train the toy model: two workers agree, and two workers
that shard their own input (`distribute.distribute_own_input`) train on the global batches of one worker."""
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


def test_two_workers_sharding_their_own_input_train_as_one_worker(tmp_path):
    run_workers(lambda index: ["tests.common.mw_worker", tmp_path / "one.npz", tmp_path / "one", "own"],
                workers=1, timeout=240)
    run_workers(lambda index: ["tests.common.mw_worker", tmp_path / f"two{index}.npz", tmp_path / "two", "own"],
                timeout=240)
    one, two = np.load(tmp_path / "one.npz"), [np.load(tmp_path / f"two{i}.npz") for i in range(2)]
    assert int(one["replicas"]) == 1 and int(two[0]["replicas"]) == 2
    # 128 rows, --batch-size 16: 8 steps of 16 rows on one worker; on two, 8 steps of 8 + 8 rows
    assert one["replica_rows"].tolist() == [[16]] * 8
    assert two[0]["replica_rows"].tolist() == two[1]["replica_rows"].tolist() == [[8]] * 8
    assert int(one["iterations"]) == int(two[0]["iterations"]) == 3 * 8
    for key in [k for k in one.files if k.startswith("arr_")]:  # the same batches in the same order
        np.testing.assert_allclose(two[0][key], one[key], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(two[0]["losses"], one["losses"], rtol=1e-5)
