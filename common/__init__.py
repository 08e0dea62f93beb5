"""Code shared by two or more dlsuite domains: strategy, runs, datasets, CLI, plots.

Importing this package does not import TensorFlow: argument parsing, `--help` and usage errors
answer at once, and TensorFlow loads where a command builds a model or a dataset. When anything
then imports it, it loads with its start-up log lines silenced (`TF_CPP_MIN_LOG_LEVEL=2` by
default; TF 2.21 prints some lines before that takes effect, so the import runs with native
stderr captured, replayed if the import fails). Set `DLSUITE_TF_LOGS=1` to see everything.
oneDNN stays enabled: disabling it halves CPU speed.
"""
import contextlib
import importlib
import importlib.abc
import importlib.util
import os
import sys
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")


class _Loaded(importlib.abc.Loader):
    """Hands the import system a module that is already loaded."""

    def __init__(self, module):
        self.module = module

    def create_module(self, spec):
        return self.module

    def exec_module(self, module):
        pass


class _QuietTensorFlow(importlib.abc.MetaPathFinder):
    """On the first `import tensorflow` (direct, or through Keras), import it with native stderr captured."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        module = _import_tensorflow_quietly()
        return importlib.util.spec_from_loader(name, _Loaded(module), origin=module.__spec__.origin)


@contextlib.contextmanager
def native_stderr_captured(keep=lambda line: False):
    """Send the process's native stderr (file descriptor 2, where TensorFlow's C++ logs go) to a scratch
    file for the block, then write back the lines `keep(line)` accepts; everything when the block raises,
    so real errors stay visible. With `DLSUITE_TF_LOGS=1` nothing is captured."""
    if os.environ.get("DLSUITE_TF_LOGS"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as scratch:
        os.dup2(scratch.fileno(), 2)
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            scratch.seek(0)
            lines = scratch.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if failed or keep(line)))


def _import_tensorflow_quietly():
    """Import TensorFlow and list its devices with its start-up lines captured; return the module."""
    with native_stderr_captured():
        tf = importlib.import_module("tensorflow")
        tf.config.list_physical_devices()
    return tf


if not os.environ.get("DLSUITE_TF_LOGS") and "tensorflow" not in sys.modules:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not any(isinstance(f, _QuietTensorFlow) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlow())
