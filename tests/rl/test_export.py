"""`python -m rl.dqn export`: the exported greedy policy, run in a fresh TensorFlow-only process, answers as
`predict`."""
import numpy as np
import pytest

from rl import dqn
from tests.cli_helpers import one_line, run, tree_digest
from tests.export_helpers import call_exported, saved_model_cli_show
from tests.rl.test_dqn import TINY

OBSERVATIONS = np.array([[0.0, 0.0, 0.0, 0.0], [0.1, -0.5, 0.2, 1.0], [-0.3, 0.8, -0.15, -1.2]], np.float32)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("dqn") / "run"
    assert dqn.main(["train", *TINY, "--epochs", "1", "--run-dir", str(run_dir)]) == 0
    return run_dir


def test_export_answers_as_predict(trained, tmp_path, capsys):
    code, result, err = run(dqn.main, ["export", "--run-dir", trained, "--out", tmp_path / "dqn"], capsys)
    assert code == 0, err
    assert result["signature"] == {"inputs": {"observation": ["float32", [None, 4]]},
                                   "outputs": {"action": ["int32", [None]], "q_values": ["float32", [None, 2]]}}
    expected = [dqn.predict(trained, observation=tuple(float(v) for v in o)) for o in OBSERVATIONS]
    want_q = np.array([e["q_values"] for e in expected])
    want_action = [e["action"] for e in expected]
    calls = [{"observation": OBSERVATIONS}, {"observation": OBSERVATIONS[:1, :3]}]
    got, wrong_shape = call_exported(tmp_path / "dqn", calls, allow_errors=True)
    np.testing.assert_allclose(got["q_values"], want_q, rtol=0, atol=1e-4)
    assert got["action"].tolist() == want_action and got["action"].dtype == np.int32
    assert "shape" in wrong_shape["__error__"] or "incompatible" in wrong_shape["__error__"], wrong_shape
    assert "observation, float32 [batch, 4]" in (tmp_path / "dqn" / "README.txt").read_text()


@pytest.mark.slow  # two more TensorFlow processes (~12 s)
def test_tflite_and_saved_model_cli(trained, tmp_path, capsys):
    code, _, err = run(dqn.main, ["export", "--run-dir", trained, "--out", tmp_path / "dqn", "--format", "tflite"],
                       capsys)
    assert code == 0, err
    expected = [dqn.predict(trained, observation=tuple(float(v) for v in o)) for o in OBSERVATIONS]
    lite = call_exported(tmp_path / "dqn", [{"observation": o[None]} for o in OBSERVATIONS], tflite=True)
    np.testing.assert_allclose([r["q_values"][0] for r in lite], [e["q_values"] for e in expected], rtol=0,
                               atol=1e-3)
    assert [int(r["action"][0]) for r in lite] == [e["action"] for e in expected]
    shown = saved_model_cli_show(tmp_path / "dqn")
    assert "signature_def['serving_default']" in shown and "inputs['observation']" in shown
    assert "outputs['action']" in shown and "outputs['q_values']" in shown


def test_export_refuses_a_non_empty_out(trained, tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "model").write_text("someone's")
    before, run_before = tree_digest(out), tree_digest(trained)
    code, _, err = run(dqn.main, ["export", "--run-dir", trained, "--out", out], capsys)
    assert code == 2
    one_line(err, "--out", "not empty")
    assert tree_digest(out) == before and tree_digest(trained) == run_before
    code, _, err = run(dqn.main, ["export", "--run-dir", trained, "--out", tmp_path / "new", "--quantize", "int8"],
                       capsys)
    assert code == 2 and not (tmp_path / "new").exists()
    one_line(err, "--format tflite")
