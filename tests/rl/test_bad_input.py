"""The rl bad-input matrix (issue 28). The environments are simulated, so the only files the domain reads are a
tabular run's saved policy (`solution.npz` of value iteration, `q_table.npz` of Q-learning; DQN's checkpoints go
through common.training). Each damaged form (empty, binary garbage, a truncated archive, another archive, a
plain array, a policy of the wrong shape, type or range) gives one line naming the file and the way out, exit 1,
and leaves the run byte-identical."""
import io
import zipfile

import numpy as np
import pytest

from rl import q_learning, value_iteration
from tests.cli_helpers import one_line, run, tree_digest

GARBAGE = bytes(range(256)) * 4 + b"\x00\xff\xfe" * 64
MODULES = {"value_iteration": (value_iteration, "solution.npz", []),
           "q_learning": (q_learning, "q_table.npz", ["--episodes", "50"])}


def _npz(**arrays):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _truncated(path):
    return path.read_bytes()[:path.stat().st_size // 2]


def _bad_crc(path):
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("policy.npy")
    at = info.header_offset + 30 + len(info.filename) + info.file_size - 8  # inside the stored array's bytes
    raw[at:at + 8] = b"\xff" * 8
    return bytes(raw)


CASES = {
    # name: (new bytes of the policy file from the good one, what the line says)
    "empty": (lambda p: b"", "is damaged or not a saved policy"),
    "binary garbage": (lambda p: GARBAGE, "is damaged or not a saved policy"),
    "truncated": (_truncated, "is damaged or not a saved policy"),
    "checksum mismatch": (_bad_crc, "is damaged or not a saved policy"),
    "a plain .npy array": (lambda p: _npy(np.zeros(16, np.int64)), "is damaged or not a saved policy"),
    "no policy array": (lambda p: _npz(values=np.zeros(16)), "holds no 'policy' array"),
    "policy of another map": (lambda p: _npz(policy=np.zeros(64, np.int64)), "holds a policy of shape (64,)"),
    "float policy": (lambda p: _npz(policy=np.zeros(16)), "holds a policy of shape (16,) (float64)"),
    "action out of range": (lambda p: _npz(policy=np.full(16, 4)), "one action in 0..3 for each of its 16 states"),
}


@pytest.fixture(scope="module", params=list(MODULES))
def tabular_run(request, tmp_path_factory):
    module, filename, flags = MODULES[request.param]
    path = tmp_path_factory.mktemp(request.param) / "run"
    assert module.main(["train", "--eval-episodes", "5", *flags, "--run-dir", str(path)]) == 0
    return module, path, filename


@pytest.mark.parametrize("case", list(CASES))
def test_saved_policy(tabular_run, tmp_path, capsys, case):
    module, good, filename = tabular_run
    damage, message = CASES[case]
    code, _, err = run(module.main, ["evaluate", "--run-dir", good, "--episodes", 2], capsys)
    assert code == 0, err  # the intact run evaluates
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for f in good.iterdir():
        if f.is_file():
            (run_dir / f.name).write_bytes(f.read_bytes())
    (run_dir / filename).write_bytes(damage(good / filename))
    before = tree_digest(run_dir)
    code, _, err = run(module.main, ["evaluate", "--run-dir", run_dir, "--episodes", 2], capsys)
    assert code == 1
    one_line(err, str(run_dir / filename), message, f"python -m rl.{module.__name__.split('.')[-1]} train")
    assert tree_digest(run_dir) == before
