"""Shared test helpers: run a module's `main(argv)` in-process and read its JSON line; 1 vs 2 replicas; a
resumed run against an uninterrupted one; launch MultiWorkerMirroredStrategy workers as processes on
127.0.0.1, or fake one worker's view of a cluster."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]


def run(main, argv, capsys):
    """Return (exit code, metrics dict from the last stdout line or None, stderr)."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return code, (json.loads(lines[-1]) if lines else None), err


def one_replica_vs_two(main, argv, capsys, command="train"):
    """Run the training `command` once on 1 device and once mirrored over 2 logical CPUs;
    return both metric dicts."""
    code1, single, err1 = run(main, [command, *argv, "--devices", 1, "--run-dir", "single"], capsys)
    assert code1 == 0, err1
    code2, mirrored, err2 = run(main, [command, *argv, "--devices", 2, "--strategy", "mirrored",
                                       "--run-dir", "mirrored"], capsys)
    assert code2 == 0, err2
    return single, mirrored


def resume_matches_uninterrupted(main, argv, epochs, capsys):
    """Train `argv` for `epochs` epochs into run "full", and for 1 epoch into "part" then `--resume` it to
    `epochs`; assert the resumed run says so, ends with exactly the full run's weights and prints the same
    metrics. Returns those final weights (a list of arrays)."""
    import keras
    import numpy as np

    code, full, err = run(main, ["train", *argv, "--epochs", epochs, "--run-dir", "full"], capsys)
    assert code == 0, err
    code, _, err = run(main, ["train", *argv, "--epochs", 1, "--run-dir", "part"], capsys)
    assert code == 0, err
    code, resumed, err = run(main, ["train", "--resume", "--epochs", epochs, "--run-dir", "part"], capsys)
    assert code == 0 and "resumed from epoch 1" in err, err
    weights = [keras.models.load_model(Path(d) / "model.keras").get_weights() for d in ("full", "part")]
    for a, b in zip(*weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert resumed == {**full, "run_dir": "part"}
    return weights[0]


def free_ports(n):
    """`n` TCP ports on 127.0.0.1 that were free a moment ago."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_workers(argv_of, workers=2, timeout=300):
    """Run `python -m *argv_of(index)` once per worker, as one MultiWorkerMirroredStrategy cluster on
    127.0.0.1 (TF_CONFIG names every worker and this task), from the repository root, in this
    process's environment. Wait for all, assert each exited 0, and return their combined stdout+stderr."""
    cluster = [f"127.0.0.1:{p}" for p in free_ports(workers)]
    procs = []
    for index in range(workers):
        task = {"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}}
        worker_env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CONFIG=json.dumps(task))
        procs.append(subprocess.Popen([sys.executable, "-m", *map(str, argv_of(index))], cwd=ROOT, env=worker_env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        outputs = [p.communicate(timeout=timeout)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    return outputs


def fake_worker_strategy(task_type, task_id, cluster):
    """A stand-in for a MultiWorkerMirroredStrategy as task `task_type` `task_id` of `cluster` (job name ->
    addresses, e.g. {"worker": ["a:1", "b:2"]}) sees it: only the `cluster_resolver` (`task_type`,
    `task_id`, `cluster_spec()`) that `common.distribute.is_chief` reads."""
    import tensorflow as tf

    resolver = SimpleNamespace(task_type=task_type, task_id=task_id, cluster_spec=lambda: tf.train.ClusterSpec(cluster))
    return SimpleNamespace(cluster_resolver=resolver)


def tree_digest(path):
    """{relative path: SHA-1 of its bytes} of every file under `path` (what "a failed command left the run
    byte-identical" compares)."""
    import hashlib

    root = Path(path)
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def one_line(err, *needles):
    """A failed command's stderr is exactly one line, holding every needle, and no traceback; returns it."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]
