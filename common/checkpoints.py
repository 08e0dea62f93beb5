"""Reading and writing a checkpoint's files (what `common.runs.Run` calls when it saves or restores).

Layers and models are stored as their positional `variables` with a shape manifest (`weights.json`);
other trackables (optimizers, schedules, plain variables) through TensorFlow's object graph.
"""
import json

import keras
import tensorflow as tf

from common.errors import CheckpointMismatch, DlsuiteError


def read_checkpoint(checkpoint, trackables, manifest):
    if not (checkpoint / "weights.json").exists():
        raise CheckpointMismatch(f"{checkpoint} has no weights.json: it was written by an older dlsuite; "
                                 "train a new run")
    saved = json.loads((checkpoint / "weights.json").read_text())
    for name, shapes in manifest.items():
        if name not in saved:
            raise CheckpointMismatch(f"{checkpoint} holds no {name!r}; it was written by another program")
        if shapes != saved[name]:
            first = next((i for i, (a, b) in enumerate(zip(shapes, saved[name])) if a != b),
                         min(len(shapes), len(saved[name])))
            raise CheckpointMismatch(
                f"{checkpoint}: {name!r} has {len(saved[name])} variables of other shapes than this one's "
                f"{len(shapes)} (first difference at variable {first}); "
                "was it trained with other sizes? Pass the same hyperparameters or another --run-dir")
    tf.train.Checkpoint(**trackables).read(str(checkpoint / "state")).expect_partial()
    return int((checkpoint / "DONE").read_text())


class _Variables(tf.Module):
    """A layer's variables as a positional list, so checkpoints need no object graph."""

    def __init__(self, variables):
        super().__init__()
        self.weights_list = list(variables)


def checkpointable(objects, action):
    trackables, manifest = {}, {}
    for name, obj in objects.items():
        if isinstance(obj, keras.layers.Layer):
            if not obj.weights:
                raise DlsuiteError(f"cannot {action} {name!r}: the model has no weights yet (build it first)")
            trackables[name] = _Variables(obj.variables)
            manifest[name] = [list(v.shape) for v in obj.variables]
        else:
            trackables[name] = obj
    return trackables, manifest
