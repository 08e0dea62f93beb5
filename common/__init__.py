"""Code shared by two or more dlsuite domains: strategy, runs, datasets, CLI, plots.

Importing this package imports TensorFlow with its start-up log lines silenced
(`TF_CPP_MIN_LOG_LEVEL=2` by default; TF 2.21 prints some lines before that takes
effect, so the import runs with native stderr captured). Set `DLSUITE_TF_LOGS=1`
to see everything. oneDNN stays enabled: disabling it halves CPU speed.
"""
import os
import sys
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def _import_tensorflow_quietly():
    """Import TensorFlow and list its devices with native stderr sent to a scratch file.

    The scratch output is replayed if the import fails, so real errors stay visible.
    """
    if os.environ.get("DLSUITE_TF_LOGS"):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as scratch:
        os.dup2(scratch.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        except BaseException:
            os.dup2(saved, 2)
            scratch.seek(0)
            sys.stderr.write(scratch.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


_import_tensorflow_quietly()
