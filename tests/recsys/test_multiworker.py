"""recsys.fm and recsys.deepfm on streamed Criteo over several replicas, and MF under
MultiWorkerMirroredStrategy: two workers on 127.0.0.1 (TF_CONFIG) train on the global batches of one worker
(the same batch size, steps and weights), a killed two-worker run resumes to the uninterrupted result, and
two logical CPUs match one."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from recsys import criteo, deepfm
from tests.cli_helpers import ROOT, free_ports, one_replica_vs_two, run_workers


@pytest.fixture
def criteo_file(tmp_path):
    """20,000 generated rows in the Kaggle layout, prepared into this test's $DLSUITE_CACHE before any worker
    (same env) reads them: 16,182 fit rows."""
    data = criteo.generate_criteo(tmp_path / "criteo" / "train.txt", 20_000)
    assert len(criteo.prepare_criteo(data).part("fit").labels) == 16_182
    return data


def _trained(run_dir):
    model = keras.models.load_model(run_dir / "model.keras")
    return model.get_weights(), int(model.optimizer.iterations.numpy())


def _metrics(output):
    return json.loads([line for line in output.splitlines() if line.startswith("{")][-1])


@pytest.mark.slow
@pytest.mark.parametrize("module", ["recsys.fm", "recsys.deepfm"])
def test_two_workers_train_on_the_global_batches_of_one_worker(criteo_file, tmp_path, module):
    def worker(out, run_dir):
        return lambda index: ["tests.recsys.mw_ctr_worker", tmp_path / f"{out}{index}.json", module, criteo_file, 512,
                              tmp_path / run_dir, "--epochs", 1]

    one_out = run_workers(worker("one", "one"), workers=1)
    two_out = run_workers(worker("two", "two"))  # one run directory: the chief writes it
    one = json.loads((tmp_path / "one0.json").read_text())
    two = [json.loads((tmp_path / f"two{i}.json").read_text()) for i in range(2)]
    assert one["replicas"] == 1 and two[0]["replicas"] == two[1]["replicas"] == 2
    # --batch-size 512 over 16,182 rows: 32 steps of 512 (the last 310) on one worker; on two, every step
    # is 256 + 256 rows (155 + 155). It was 64 steps of 128 + 128 rows before distribute_own_input.
    assert one["replica_rows"] == [[512]] * 31 + [[310]]
    assert two[0]["replica_rows"] == two[1]["replica_rows"] == [[256]] * 31 + [[155]]
    (w1, steps1), (w2, steps2) = _trained(tmp_path / "one"), _trained(tmp_path / "two")
    assert steps1 == steps2 == 32
    for a, b in zip(w1, w2, strict=True):  # the same batches in the same order: the same model
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
    single, first, second = _metrics(one_out[0]), _metrics(two_out[0]), _metrics(two_out[1])
    assert first["auc"] == pytest.approx(single["auc"], abs=1e-4) and second["auc"] == pytest.approx(first["auc"])
    assert single["loss"] == pytest.approx(first["loss"], rel=1e-4)


def _train_argv(run_dir, *flags):
    return ["recsys.deepfm", "train", "--dataset", "criteo", "--data-dir", run_dir.parent / "criteo", "--epochs", 3,
            "--batch-size", 512, "--strategy", "multi-worker", "--run-dir", run_dir, *flags]


def _start_workers(argv, workers=2):
    cluster = [f"127.0.0.1:{p}" for p in free_ports(workers)]
    return [subprocess.Popen(
        [sys.executable, "-m", *map(str, argv)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONPATH=str(ROOT), TF_CONFIG=json.dumps(
            {"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}})))
        for index in range(workers)]


@pytest.mark.slow
def test_a_killed_two_worker_run_resumes_from_its_shared_run_directory(criteo_file, tmp_path):
    # Both workers name the same --run-dir (here one machine; across machines shared storage): the chief
    # writes it, the other worker restores from it on --resume
    run_workers(lambda index: _train_argv(tmp_path / "full"))
    part = tmp_path / "part"
    procs = _start_workers(_train_argv(part))
    try:
        deadline = time.monotonic() + 300
        while not (part / "checkpoints" / "epoch-0001" / "DONE").exists():
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
            time.sleep(0.05)
        for p in procs:
            p.send_signal(signal.SIGKILL)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert not (part / "model.keras").exists()
    outputs = run_workers(lambda index: _train_argv(part, "--resume"))
    resumed = [int(m.group(1)) for out in outputs for m in [re.search(r"resumed from epoch (\d)", out)] if m]
    assert len(resumed) == 2 and resumed[0] == resumed[1] in (1, 2)
    (full, steps_full), (again, steps_again) = _trained(tmp_path / "full"), _trained(part)
    assert steps_full == steps_again == 3 * 32
    for a, b in zip(full, again, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)


def test_streamed_criteo_on_two_replicas_matches_one(criteo_file, tmp_path, capsys):
    # Keras iterates an epoch's dataset a second time under MirroredStrategy: with a generator that did not
    # replay, the first epoch's shuffles differed from one replica's
    single, mirrored = one_replica_vs_two(deepfm.main, ["--dataset", "criteo", "--data-dir", criteo_file.parent,
                                                        "--epochs", 1, "--batch-size", 512], capsys)
    (w1, steps1), (w2, steps2) = _trained(tmp_path / "single"), _trained(tmp_path / "mirrored")
    assert steps1 == steps2 == 32
    for a, b in zip(w1, w2, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
    assert mirrored["auc"] == pytest.approx(single["auc"], abs=1e-4)


@pytest.mark.slow
def test_two_workers_train_mf_with_per_rating_sgd(tmp_path):
    # the sgd default under MultiWorkerMirroredStrategy: no XLA, one step per execution, the workers'
    # IndexedSlices gathered, so both end with the same tables and the same test RMSE
    outputs = run_workers(
        lambda index: ["recsys.mf", "train", "--demo", "--epochs", 2, "--strategy", "multi-worker",
                       "--run-dir", tmp_path / f"run{index}"])
    results = [json.loads([line for line in out.splitlines() if line.startswith("{")][-1]) for out in outputs]
    assert results[0]["rmse"] == pytest.approx(results[1]["rmse"], abs=1e-6) and results[0]["rmse"] < 0.85
