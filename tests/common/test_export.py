"""common.export.write on a toy tf.Module: the layout, the signature, the atomic write, TFLite, a fresh process."""
import argparse
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from common import export
from common.errors import UsageError
from tests.cli_helpers import tree_digest
from tests.export_helpers import call_exported

W = np.array([[1.0, -2.0], [0.5, 0.25], [3.0, 0.0]], np.float32)
NAMES = ["left", "right"]


def toy_module():
    """x (batch, 3) float32 -> scores = x @ W (batch, 2), label = the name of the larger score (a lookup table)."""
    module = tf.Module()
    module.w = tf.Variable(W)
    module.names = tf.constant(NAMES)

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def serve(x):
        scores = tf.matmul(x, module.w)
        return {"scores": scores, "label": tf.gather(module.names, tf.argmax(scores, axis=-1))}

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def scores_only(x):
        return {"scores": tf.matmul(x, module.w)}

    return module, serve, scores_only


X = np.array([[1, 2, 3], [-1, 0, 0], [0, 0, 0.5]], np.float32)


def test_write_layout_signature_and_fresh_process(tmp_path):
    module, serve, _ = toy_module()
    out = tmp_path / "exported"
    result = export.write(out, module, {"serving_default": serve}, readme="Toy scores.\n\nExample: serve(x=[[1,2,3]])",
                          files={"labels.txt": "left\nright\n", "raw.bin": b"\x00\x01"})
    assert result == {"out": str(out), "tflite": None, "signature": {
        "inputs": {"x": ["float32", [None, 3]]},
        "outputs": {"label": ["string", [None]], "scores": ["float32", [None, 2]]}}}
    assert {p.name for p in out.iterdir()} >= {"saved_model.pb", "variables", "README.txt", "labels.txt", "raw.bin"}
    assert (out / "raw.bin").read_bytes() == b"\x00\x01" and (out / "labels.txt").read_text() == "left\nright\n"
    readme = (out / "README.txt").read_text()
    assert readme.startswith("Toy scores.") and "input  x: float32 [None, 3]" in readme and "output label: string" \
        in readme
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary sibling left
    got = call_exported(out, {"x": X})
    np.testing.assert_allclose(got["scores"], X @ W, rtol=0, atol=1e-6)
    assert got["label"].tolist() == [b"left", b"right", b"left"]  # scores [11, -1.5], [-1, 2], [1.5, 0]
    shown = subprocess.run([sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--dir", str(out),
                            "--all"], capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "signature_def['serving_default']" in shown.stdout
    assert "inputs['x'] tensor_info" in shown.stdout and "outputs['label'] tensor_info" in shown.stdout


@pytest.mark.slow  # two conversions and two TensorFlow processes (~12 s)
def test_tflite_from_another_signature_and_int8(tmp_path):
    module, serve, scores_only = toy_module()
    result = export.write(tmp_path / "f32", module, {"serving_default": serve}, readme="toy", tflite=True,
                          tflite_signature=scores_only)
    assert result["tflite"] == str(tmp_path / "f32" / "model.tflite")
    assert "model.tflite" in (tmp_path / "f32" / "README.txt").read_text()
    got = call_exported(tmp_path / "f32", {"x": X[:1]}, tflite=True)
    assert set(got) == {"scores"}
    np.testing.assert_allclose(got["scores"], X[:1] @ W, atol=1e-6)

    def representative():
        rng = np.random.default_rng(0)
        for _ in range(20):
            yield [rng.uniform(-1, 3, (1, 3)).astype(np.float32)]

    export.write(tmp_path / "int8", module, {"serving_default": serve}, readme="toy", tflite=True,
                 tflite_signature=scores_only, quantize="int8", representative_dataset=representative)
    quantized = call_exported(tmp_path / "int8", {"x": X[:1]}, tflite=True)["scores"]
    # int8 steps: inputs 4/255, weights 3/127, outputs ~23/255: a few tenths at most, but not float's exactness
    assert 1e-3 < np.abs(quantized - X[:1] @ W).max() < 0.6


def test_tflite_of_a_keras_model_holds_its_weights(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2)])
    module = tf.Module()
    module.net = net

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def serve(x):
        return {"y": net(x)}

    export.write(tmp_path / "k", module, {"serving_default": serve}, readme="keras", tflite=True)
    got = call_exported(tmp_path / "k", {"x": X[:1]}, tflite=True)["y"]
    np.testing.assert_allclose(got, net(X[:1]).numpy(), rtol=0, atol=1e-5)  # not uninitialised variables


def test_non_empty_out_refused_unchanged(tmp_path):
    module, serve, _ = toy_module()
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    before = tree_digest(out)
    with pytest.raises(UsageError, match="not empty"):
        export.write(out, module, {"serving_default": serve}, readme="toy")
    assert tree_digest(out) == before
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        export.write(tmp_path / "file", module, {"serving_default": serve}, readme="toy")
    empty = tmp_path / "empty"
    empty.mkdir()
    export.write(empty, module, {"serving_default": serve}, readme="toy")  # an empty folder is fine
    assert (empty / "saved_model.pb").exists()


def test_failed_export_leaves_nothing(tmp_path, monkeypatch):
    module, serve, _ = toy_module()

    def broken(*args):
        raise RuntimeError("converter broke")

    monkeypatch.setattr(export, "_convert_tflite", broken)
    with pytest.raises(RuntimeError, match="converter broke"):
        export.write(tmp_path / "out", module, {"serving_default": serve}, readme="toy", tflite=True)
    assert list(tmp_path.iterdir()) == []


def test_flags_and_options(tmp_path):
    parser = argparse.ArgumentParser()
    export.add_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path / "o")])
    assert (args.export_format, args.quantize) == ("saved_model", "none")
    assert export.options(args) == {"tflite": False, "quantize": None}
    args = parser.parse_args(["--out", str(tmp_path / "o"), "--format", "tflite", "--quantize", "int8"])
    assert export.options(args) == {"tflite": True, "quantize": "int8"}
    args = parser.parse_args(["--out", str(tmp_path / "o"), "--quantize", "int8"])
    with pytest.raises(UsageError, match="--format tflite"):
        export.options(args)
    with pytest.raises(SystemExit):
        parser.parse_args([])  # --out is required


def test_no_tensorflow_at_import():
    code = "import sys, common.export; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
