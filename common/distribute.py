"""The tf.distribute strategy every trainer runs under.

`configure_devices` must run before TensorFlow creates its runtime (before any op):
on a machine without GPUs it splits the CPU into N logical devices so that
MirroredStrategy really runs N replicas. `make_strategy` then picks the strategy
from a flag value and `TF_CONFIG`. Batch sizes given on the command line are
global (summed over replicas); `per_replica_batch_size` and `worker_shard` are the
places that divide them.
"""
import functools
import json
import os

import tensorflow as tf

from common.errors import UsageError

STRATEGIES = ("auto", "default", "one-device", "mirrored", "multi-worker")


def _gpus():
    return tf.config.list_physical_devices("GPU")


def configure_devices(devices=None):
    """Make at least `devices` logical devices of the local accelerator type available.

    With GPUs nothing is split (`devices` picks the first N GPUs in `make_strategy`).
    Without, the first physical CPU becomes `devices` logical CPUs. Idempotent when at
    least that many logical CPUs already exist; raises `UsageError` (one line) when
    TensorFlow's runtime is already initialised with fewer.
    """
    if devices is None:
        return
    if devices < 1:
        raise UsageError(f"--devices must be at least 1, got {devices}")
    gpus = _gpus()
    if gpus:
        if devices > len(gpus):
            raise UsageError(f"--devices {devices} asks for more GPUs than the {len(gpus)} visible")
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current and len(current) >= devices:
        return
    if devices == 1 and not current:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(devices)]
        )
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        if have >= devices:
            return
        raise UsageError(
            f"--devices {devices}: TensorFlow already started with {have} CPU device(s); "
            "call common.distribute.configure_devices before any TensorFlow op"
        ) from None


def _local_devices(devices):
    gpus = tf.config.list_logical_devices("GPU")
    pool = gpus or tf.config.list_logical_devices("CPU")
    n = devices or len(pool)
    if n > len(pool):
        raise UsageError(f"--devices {n}: only {len(pool)} device(s) are available")
    return [d.name for d in pool[:n]]


@functools.lru_cache(maxsize=None)
def _mirrored(devices):
    # One instance per device set and process: separate MirroredStrategy objects
    # reuse collective instance keys and then abort on each other's shapes.
    return tf.distribute.MirroredStrategy(list(devices))


def make_strategy(name="auto", devices=None):
    """Return a `tf.distribute.Strategy` for `--strategy name --devices N`.

    auto: MultiWorkerMirroredStrategy when `TF_CONFIG` is set, MirroredStrategy when
    more than one GPU is visible (or `devices` > 1), else the default strategy.
    default: no distribution. one-device: the first device. mirrored: N local
    devices (all GPUs, or N logical CPUs). multi-worker: from `TF_CONFIG`.
    """
    if name not in STRATEGIES:
        raise UsageError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    configure_devices(devices)
    if name == "auto":
        if os.environ.get("TF_CONFIG"):
            name = "multi-worker"
        elif (devices or 1) > 1 or (devices is None and len(_gpus()) > 1):
            name = "mirrored"
        else:
            name = "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one-device":
        return tf.distribute.OneDeviceStrategy(_local_devices(1)[0])
    if name == "mirrored":
        return _mirrored(tuple(_local_devices(devices)))
    if not os.environ.get("TF_CONFIG"):
        raise UsageError("--strategy multi-worker needs TF_CONFIG describing the cluster and this task")
    try:
        json.loads(os.environ["TF_CONFIG"])
    except ValueError:
        raise UsageError("TF_CONFIG is not valid JSON") from None
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy):
    """True on the worker that writes run outputs (always true outside multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return not has_chief and resolver.task_type == "worker" and resolver.task_id == 0


def _split_batch(global_batch, parts, what):
    if global_batch % parts:
        raise UsageError(
            f"--batch-size {global_batch} does not split evenly over {parts} {what}; "
            f"use a multiple of {parts}"
        )
    return global_batch // parts


def per_replica_batch_size(global_batch, strategy):
    """Split a global batch size over the strategy's replicas; it must divide evenly."""
    return _split_batch(global_batch, strategy.num_replicas_in_sync, "replicas")


def worker_shard(strategy, global_batch):
    """(this worker's index, number of workers, this worker's batch size) for an input pipeline in
    which every worker reads its own shard. Under MultiWorkerMirroredStrategy the chief counts
    first, then the workers in order; elsewhere it is (0, 1, global_batch). The global batch
    (`--batch-size`) must split evenly over the workers: `UsageError` otherwise.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return 0, 1, global_batch
    spec = resolver.cluster_spec().as_dict()
    chiefs = len(spec.get("chief", []))
    workers = chiefs + len(spec.get("worker", []))
    index = resolver.task_id + (chiefs if resolver.task_type == "worker" else 0)
    return index, workers, _split_batch(global_batch, workers, "workers")


def scale_loss(loss):
    """Scale a per-replica mean loss for a custom `train_step`.

    Gradients are summed over replicas; dividing by the number of replicas makes the
    update equal to the single-replica one. Keras `Loss` objects already do this.
    """
    return loss / tf.distribute.get_replica_context().num_replicas_in_sync


def use_xla():
    """Whether to XLA-compile train steps (`model.compile(jit_compile=use_xla())`).

    On GPUs yes. On CPUs no: oneDNN's kernels beat XLA's CPU code for convolutional
    models here (DCGAN trains at 0.52x and FCN at 0.59x the speed with XLA), while Keras'
    default `jit_compile="auto"` turns XLA on.
    """
    return bool(tf.config.list_physical_devices("GPU"))


def sparse_step_xla():
    """Whether to XLA-compile a train step of a few dozen tiny ops on embedding rows (word2vec,
    `recsys.mf`'s sgd): on one replica, where XLA fuses their dispatch away (word2vec: 1.4 ms
    against 2 ms a step on PTB); not under a multi-replica strategy, where Keras 3.15's XLA train
    step fails on the `IndexedSlices` gradients."""
    return tf.distribute.get_strategy().num_replicas_in_sync == 1


def sparse_steps_per_execution(steps=32):
    """Train steps per call into the graph for such small steps: `steps` on one replica (Python
    overhead would dominate otherwise), 1 under a multi-replica strategy (Keras 3.15's multi-step
    loop fails there with an unfed placeholder)."""
    return steps if tf.distribute.get_strategy().num_replicas_in_sync == 1 else 1
