"""Test-session set-up: two logical CPU devices, real-data fixture, isolated run/cache dirs."""
import os
import signal

import pytest
import tensorflow as tf

import common  # noqa: F401  (TensorFlow start-up noise silenced before anything imports it)
from common.data import shared_data_dir
from common.distribute import configure_devices

# Split the CPU before any TensorFlow op, so MirroredStrategy tests get two real replicas,
# then run one op so the split is fixed for the whole session.
configure_devices(2)
tf.constant(0.0).numpy()


@pytest.fixture
def shared_data():
    """Path of ../shared/data (real dataset files); skips the test where it is absent."""
    path = shared_data_dir()
    if path is None:
        pytest.skip("../shared/data is not present on this machine")
    return path


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Every test gets its own working directory (runs/ lands there), dataset cache and record of the datasets
    resolved (`common.data.resolved_datasets`, which config.json records), and leaves the process as it found
    it: the environment (commands set variables for their worker processes, e.g. gp_hpo.hpo's data source)
    and the SIGINT handler (a test of Ctrl-C needs Python's own)."""
    import common.data

    environment, handler = dict(os.environ), signal.getsignal(signal.SIGINT)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DLSUITE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(common.data, "_RESOLVED", {})
    yield
    for name in set(os.environ) - set(environment):
        del os.environ[name]
    os.environ.update(environment)
    if handler is not None:
        signal.signal(signal.SIGINT, handler)
