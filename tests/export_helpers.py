"""Run an export (`common.export.write`'s directory) the way another team would: in a fresh Python process that
imports only TensorFlow and NumPy, never this suite."""
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SUITE = ("common", "vision", "nlp", "recsys", "rl", "gan", "gp_hpo")

_CHILD = r"""
import importlib, pickle, sys, traceback
import numpy as np
import tensorflow as tf

out, request, answer, tflite, signature, allow_errors, imports = sys.argv[1:8]
for name in filter(None, imports.split(",")):
    importlib.import_module(name)
with open(request, "rb") as f:
    calls = pickle.load(f)
if tflite == "1":
    runner = tf.lite.Interpreter(model_path=out + "/model.tflite").get_signature_runner(signature)
    call = lambda inputs: runner(**{k: np.asarray(v) for k, v in inputs.items()})
else:
    model = tf.saved_model.load(out)
    function = model.signatures[signature]
    call = lambda inputs: {k: v.numpy() for k, v in function(**{k: tf.constant(v) for k, v in inputs.items()}).items()}
results = {}
for i, inputs in enumerate(calls):
    try:
        for name, value in call(inputs).items():
            results[f"{i}/{name}"] = np.asarray(value)
    except Exception as e:
        if allow_errors != "1":
            raise
        results[f"{i}/__error__"] = np.asarray(f"{type(e).__name__}: {e}")
suite = sorted(m for m in sys.modules if m.split(".")[0] in {SUITE})
assert not suite, f"the exported model imported the suite's modules {suite}"
np.savez(answer, **results)
"""


def call_exported(out, inputs, *, tflite=False, signature="serving_default", allow_errors=False, imports=()):
    """Run the export at `out` in a FRESH python process that imports only tensorflow and numpy (cwd a temp
    dir, PYTHONPATH unset): `tf.saved_model.load(out).signatures[signature](**inputs)`, or with `tflite=True`
    `tf.lite.Interpreter(out/model.tflite).get_signature_runner(signature)(**inputs)`; assert no module of
    the suite was imported; return the outputs as numpy arrays (name -> array, through an .npz).

    `inputs` is a dict name -> array-like (strings as bytes, e.g. `[png_bytes]`), or a list of such dicts,
    called in turn in the same process (a list of output dicts is returned). With `allow_errors`, a call that
    raises gives {"__error__": "ErrorType: message"} and the later calls still run (the serving process
    lives on); otherwise any failure raises AssertionError with the child's stderr tail. `imports`: modules the
    child imports besides TensorFlow, which the export needs ("tensorflow_text" for a keras-hub tokenizer's ops).
    """
    many = isinstance(inputs, (list, tuple))
    calls = list(inputs) if many else [inputs]
    calls = [{k: (np.asarray(v, dtype=object) if _is_bytes(v) else np.asarray(v)) for k, v in c.items()}
             for c in calls]
    with tempfile.TemporaryDirectory() as tmp:
        request, answer = Path(tmp) / "request.pkl", Path(tmp) / "answer.npz"
        with open(request, "wb") as f:
            pickle.dump(calls, f)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        script = _CHILD.replace("{SUITE}", repr(set(SUITE)))
        proc = subprocess.run([sys.executable, "-c", script, str(Path(out).resolve()), str(request), str(answer),
                               "1" if tflite else "0", signature, "1" if allow_errors else "0", ",".join(imports)],
                              cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 or not answer.exists():
            raise AssertionError(f"exported model at {out} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
        with np.load(answer, allow_pickle=True) as npz:
            flat = {k: npz[k] for k in npz.files}
    results = [{} for _ in calls]
    for key, value in flat.items():
        i, name = key.split("/", 1)
        results[int(i)][name] = str(value) if name == "__error__" else value
    return results if many else results[0]


def _is_bytes(value):
    """True for bytes/str values or sequences of them (string tensors)."""
    if isinstance(value, (bytes, str)):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "OSU"
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(isinstance(v, (bytes, str)) for v in value)


def saved_model_cli_show(out):
    """The stdout of `saved_model_cli show --dir out --all` (run as a module of this Python), asserted to succeed."""
    proc = subprocess.run([sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--dir", str(out),
                           "--all"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def check_refusals(main, capsys, run_dir="run", out="served"):
    """An export into the non-empty `out` and a TFLite export of a SavedModel-only model are each one line,
    exit 2, and leave `out` byte-identical (a TFLite target is not created)."""
    from tests.cli_helpers import one_line, run, tree_digest

    before = tree_digest(Path(out))
    code, _, err = run(main, ["export", "--run-dir", run_dir, "--out", out], capsys)
    assert code == 2 and one_line(err, f"--out {out} is not empty")
    code, _, err = run(main, ["export", "--run-dir", run_dir, "--out", "t", "--format", "tflite"], capsys)
    assert code == 2 and one_line(err, "exports a SavedModel only") and not Path("t").exists()
    assert tree_digest(Path(out)) == before
