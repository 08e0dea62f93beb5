"""Two MultiWorkerMirroredStrategy workers on 127.0.0.1 train the toy model and agree."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_train_the_same_model(tmp_path):
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    run_dir = tmp_path / "run"
    procs = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": {"worker": workers},
                                                     "task": {"type": "worker", "index": index}}),
                   PYTHONPATH=str(ROOT))
        procs.append(subprocess.Popen([sys.executable, "-m", "tests.common.mw_worker", str(tmp_path / f"w{index}.npz"),
                                       str(run_dir)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    try:
        outputs = [p.communicate(timeout=240)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
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
