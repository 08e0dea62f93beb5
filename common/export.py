"""`export`: a trained run as a SavedModel (and TFLite model) with serving signatures on raw inputs.

A model module's `export(ctx)` builds a `tf.Module` holding every variable and lookup table, and
`tf.function`s taking named `tf.TensorSpec` inputs (encoded images, strings, ids) and returning dicts of
named outputs, with the pre- and post-processing of `predict` inside the graph; `write` saves them:

    DIR/saved_model.pb, DIR/variables/, DIR/assets/   the SavedModel (`saved_model_cli show --dir DIR --all`)
    DIR/README.txt                                    the signatures and one example call
    DIR/<files>                                       class names or id maps (labels.txt, ...)
    DIR/model.tflite                                  with --format tflite

TensorFlow is imported inside the functions, so a command's `--help` never waits for it.
"""
import os
import shutil
import tempfile
from pathlib import Path

from common.errors import DlsuiteError, UsageError

FORMATS = ("saved_model", "tflite")
QUANTIZE = ("none", "int8")
README = "README.txt"
TFLITE = "model.tflite"


def add_arguments(parser):
    """The export flags: --out DIR (required), --format saved_model|tflite, --quantize none|int8."""
    parser.add_argument("--out", type=Path, required=True,
                        help="new (or empty) directory for the SavedModel, README.txt and the label files")
    # dest export_format: a model's Config may have a `format` field (its data's), which a flag of that dest would set
    parser.add_argument("--format", choices=FORMATS, default="saved_model", dest="export_format",
                        help="saved_model, or tflite: the SavedModel and DIR/model.tflite (default: saved_model)")
    parser.add_argument("--quantize", choices=QUANTIZE, default="none",
                        help="int8: post-training integer quantization of the TFLite model from a representative "
                             "set of training inputs (needs --format tflite; default: none)")


def check_out(out):
    """Refuse (one-line UsageError) an `out` that is a file or a non-empty directory; call it before heavy work."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; name a new or empty directory")
    if out.is_dir() and any(out.iterdir()):
        raise UsageError(f"--out {out} is not empty; name a new or empty directory (an export never overwrites)")
    return out


def options(args):
    """`write`'s `tflite` and `quantize` keywords from the parsed flags, checked (with --out) before the
    model is built: {"tflite": bool, "quantize": None | "int8"}."""
    check_out(args.out)
    quantize = None if getattr(args, "quantize", "none") in (None, "none") else args.quantize
    tflite = getattr(args, "export_format", "saved_model") == "tflite"
    if quantize and not tflite:
        raise UsageError(f"--quantize {quantize} applies to the TFLite model; add --format tflite")
    return {"tflite": tflite, "quantize": quantize}


def _spec_entry(spec):
    return [spec.dtype.name, None if spec.shape.rank is None else list(spec.shape.as_list())]


def _tflite_entry(detail):
    """[dtype, shape] of a TFLite signature runner's input/output detail; unknown sizes (-1) are None."""
    shape = detail.get("shape_signature", detail["shape"])
    return [detail["dtype"].__name__, [None if d < 0 else int(d) for d in shape]]


def signature_of(function):
    """{"inputs": {name: [dtype, shape]}, "outputs": {...}} of a loaded SavedModel signature (a
    ConcreteFunction from `tf.saved_model.load(DIR).signatures[...]`); unknown sizes are None."""
    inputs, outputs = function.structured_input_signature[1], function.structured_outputs
    return {"inputs": {k: _spec_entry(v) for k, v in sorted(inputs.items())},
            "outputs": {k: _spec_entry(v) for k, v in sorted(outputs.items())}}


def describe(signatures):
    """Text lines listing each signature's inputs and outputs (what README.txt ends with)."""
    lines = []
    for key, sig in signatures.items():
        lines.append(f"signature {key!r}:")
        for side in ("inputs", "outputs"):
            for name, (dtype, shape) in sig[side].items():
                dims = "?" if shape is None else "[" + ", ".join("None" if d is None else str(d) for d in shape) + "]"
                lines.append(f"  {side[:-1]:6} {name}: {dtype} {dims}")
    return "\n".join(lines)


def _track_keras_variables(module):
    """Let `module` track the tf.Variables under the Keras models and layers it holds as attributes (or in
    lists/dicts): Keras 3's variables wrap them, and the TFLite converter freezes only variables the
    SavedModel's object graph reaches directly (else it keeps uninitialised resource variables and the
    model computes garbage)."""
    import tensorflow as tf

    found = []
    for value in list(vars(module).values()):
        for item in tf.nest.flatten(value) if isinstance(value, (list, tuple, dict)) else [value]:
            weights = getattr(item, "weights", None) if hasattr(item, "built") else None
            found += [getattr(w, "value", w) for w in weights or []]
    if found:
        module.keras_variables = found


def _convert_tflite(function, module, quantize, representative_dataset, scratch):
    """TFLite flatbuffer bytes of the tf.function `function` (signature key "serving_default"), converted
    from a SavedModel of it written to the empty folder `scratch` (from a SavedModel the converter freezes
    the variables; from a concrete function it keeps Keras 3's as uninitialised resource variables)."""
    import tensorflow as tf

    tf.saved_model.save(module, str(scratch), signatures={"serving_default": function})
    converter = tf.lite.TFLiteConverter.from_saved_model(str(scratch), signature_keys=["serving_default"])
    if quantize == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
    try:
        return converter.convert()
    except Exception as e:  # the converter's errors are pages long; the first line names the op
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DlsuiteError(f"TFLite conversion failed ({first}); export --format saved_model instead") from None


def write(out, module, signatures, *, readme, files=None, tflite=False, quantize=None, representative_dataset=None,
          tflite_signature=None):
    """Write the SavedModel of `module` with `signatures` (name -> tf.function with an input_signature of
    named TensorSpecs, returning a dict of named outputs; "serving_default" required) to `out`, plus
    README.txt (`readme`, then the signatures listed), `files` (name -> str | bytes) and, with `tflite`,
    model.tflite converted from `tflite_signature` (else the serving one); `quantize="int8"` needs
    `representative_dataset` (a callable yielding lists of input arrays, TFLite's convention). Keras models
    and layers held as attributes of `module` get their variables tracked for the TFLite converter.

    Everything is written into a temporary sibling of `out` and renamed onto it at the end: a failed
    export leaves nothing. An `out` that is a file or a non-empty directory is a UsageError.
    Returns {"out": str, "signature": {"inputs": {name: [dtype, shape]}, "outputs": {...}}, "tflite": str|None}.
    """
    import tensorflow as tf

    out = check_out(out)
    if "serving_default" not in signatures:
        raise ValueError("signatures must hold 'serving_default'")
    quantize = None if quantize in (None, "none") else quantize
    if quantize not in (None, "int8"):
        raise UsageError(f"--quantize must be none or int8, got {quantize}")
    if quantize and not tflite:
        raise UsageError(f"--quantize {quantize} applies to the TFLite model; add --format tflite")
    if quantize and representative_dataset is None:
        raise UsageError(f"--quantize {quantize} needs a representative dataset, which this model does not provide")
    for name in files or {}:
        if name in (README, TFLITE, "saved_model.pb", "variables", "assets", "fingerprint.pb") or "/" in name:
            raise ValueError(f"file name {name!r} is taken by the export layout")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.export-"))
    try:
        _track_keras_variables(module)
        tf.saved_model.save(module, str(tmp), signatures=signatures)
        loaded = tf.saved_model.load(str(tmp))
        described = {key: signature_of(loaded.signatures[key]) for key in signatures}
        del loaded
        if tflite:
            scratch = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tflite-"))
            try:
                flat = _convert_tflite(tflite_signature or signatures["serving_default"], module, quantize,
                                       representative_dataset, scratch)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            (tmp / TFLITE).write_bytes(flat)
            runner = tf.lite.Interpreter(model_content=flat).get_signature_runner()
            sides = (("inputs", runner.get_input_details()), ("outputs", runner.get_output_details()))
            described_tflite = {"tflite": {side: {k: _tflite_entry(v) for k, v in sorted(details.items())}
                                           for side, details in sides}}
        text = readme.rstrip() + "\n\n" + describe(described)
        if tflite:
            text += f"\n\n{TFLITE}{' (int8 where an op has an int8 kernel, else float)' if quantize else ''}, " \
                    "tf.lite.Interpreter(...).get_signature_runner():\n" + describe(described_tflite).split("\n", 1)[1]
        (tmp / README).write_text(text + "\n", encoding="utf-8")
        for name, content in (files or {}).items():
            target = tmp / name
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
        check_out(out)  # still free (nothing appeared while the model was saved)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return {"out": str(out), "signature": described["serving_default"],
            "tflite": str(out / TFLITE) if tflite else None}
