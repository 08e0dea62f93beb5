"""DeepFM on streamed Criteo under MultiWorkerMirroredStrategy: two workers on 127.0.0.1 (TF_CONFIG), each
reading its own blocks, end with the same model."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recsys import criteo
from tests.common.test_multiworker import _free_ports

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_workers_train_deepfm_on_their_own_blocks(tmp_path):
    data = criteo.generate_criteo(tmp_path / "criteo" / "train.txt", 20_000)
    cache = tmp_path / "cache"
    criteo.prepare_criteo(data, cache_dir=cache / "criteo-cache")  # once, before the workers read it
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        env = dict(os.environ, PYTHONPATH=str(ROOT), DLSUITE_CACHE=str(cache),
                   TF_CONFIG=json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "recsys.deepfm", "train", "--dataset", "criteo", "--data-dir", str(data.parent),
             "--epochs", "2", "--batch-size", "512", "--strategy", "multi-worker",
             "--run-dir", str(tmp_path / f"run{index}")],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        outputs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    results = [json.loads([line for line in out.splitlines() if line.startswith("{")][-1]) for out in outputs]
    assert results[0]["auc"] == pytest.approx(results[1]["auc"], abs=1e-6) and results[0]["auc"] > 0.6
    assert (tmp_path / "run0" / "model.keras").exists()  # the chief writes the run
