"""The tf.distribute strategy every trainer runs under.

`configure_devices` must run before TensorFlow creates its runtime (before any op):
on a machine without GPUs it splits the CPU into N logical devices so that
MirroredStrategy really runs N replicas. `make_strategy` then picks the strategy
from a flag value and `TF_CONFIG`. Batch sizes given on the command line are
global (summed over replicas); `per_replica_batch_size` and `distribute_own_input` are the
places that divide them.
"""
import functools
import json
import os
from typing import NamedTuple

from common.errors import UsageError

STRATEGIES = ("auto", "default", "one-device", "mirrored", "multi-worker")


def _gpus():
    import tensorflow as tf

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
    import tensorflow as tf

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
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    pool = gpus or tf.config.list_logical_devices("CPU")
    n = devices or len(pool)
    if n > len(pool):
        raise UsageError(f"--devices {n}: only {len(pool)} device(s) are available")
    return [d.name for d in pool[:n]]


@functools.lru_cache(maxsize=None)
def _mirrored(devices):
    import tensorflow as tf

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
    import tensorflow as tf

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
    return _multi_worker(os.environ["TF_CONFIG"])


@functools.lru_cache(maxsize=None)
def _multi_worker(tf_config):
    import tensorflow as tf

    from common.keras_compat import patch_multi_worker_reduce

    patch_multi_worker_reduce()  # keras-team/keras#20585: fit's scalar logs under several workers
    # One instance per cluster and process, for the same reason as `_mirrored`.
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


class InputShard(NamedTuple):
    """What one input pipeline feeds: replicas `first .. first + count - 1` of `total`, `replica_batch`
    examples each a step. Its dataset yields, for every step, `count` batches (one per replica, in
    order): pieces `first .. first + count - 1` of the `total` equal pieces of that step's global batch."""

    first: int
    count: int
    total: int
    replica_batch: int


def distribute_own_input(strategy, global_batch, dataset_fn):
    """A dataset for `model.fit` from an input that the trainer shards itself (every worker reading only
    its part, no tf.data auto-sharding): `dataset_fn(InputShard) -> tf.data.Dataset`.

    Built on `strategy.distribute_datasets_from_function`: each input pipeline (one per worker) gets its
    replicas and `InputContext.get_per_replica_batch_size(global_batch)`, so a step trains on the global
    batch `global_batch` (`--batch-size`) over any number of workers and replicas, and the steps per
    epoch are those of one replica. Under the default strategy it is `dataset_fn(InputShard(0, 1, 1,
    global_batch))` itself. The global batch must split evenly over the replicas (`UsageError`).
    """
    per_replica_batch_size(global_batch, strategy)
    local_replicas = []

    def pipeline(context):
        count = context.num_replicas_in_sync // context.num_input_pipelines
        local_replicas.append(count)
        return dataset_fn(InputShard(context.input_pipeline_id * count, count, context.num_replicas_in_sync,
                                     context.get_per_replica_batch_size(global_batch)))

    data = strategy.distribute_datasets_from_function(pipeline)
    # Keras 3.15's fit reads a distributed dataset's `cardinality` as its steps per epoch, but TensorFlow's
    # DistributedDatasetsFromFunction reports its pipeline's batches, one per local replica and step
    # (with 2 local replicas fit expected twice the steps, warned that the input ran out of data and ran
    # 33 optimizer steps an epoch where the data holds 32).
    steps = getattr(data, "_cardinality", -1)
    if local_replicas and local_replicas[0] > 1 and steps > 0:
        data._cardinality = steps // local_replicas[0]
    return data


def scale_loss(loss):
    """Scale a per-replica mean loss for a custom `train_step`.

    Gradients are summed over replicas; dividing by the number of replicas makes the
    update equal to the single-replica one. Keras `Loss` objects already do this.
    """
    import tensorflow as tf

    return loss / tf.distribute.get_replica_context().num_replicas_in_sync


def use_xla():
    """Whether to XLA-compile train steps (`model.compile(jit_compile=use_xla())`).

    On GPUs yes. On CPUs no: oneDNN's kernels beat XLA's CPU code for convolutional
    models here (DCGAN trains at 0.52x and FCN at 0.59x the speed with XLA), while Keras'
    default `jit_compile="auto"` turns XLA on.
    """
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def sparse_step_xla():
    """Whether to XLA-compile a train step of a few dozen tiny ops on embedding rows (word2vec,
    `recsys.mf`'s sgd): on one replica, where XLA fuses their dispatch away (word2vec: 1.4 ms
    against 2 ms a step on PTB); not under a multi-replica strategy, where Keras 3.15's XLA train
    step fails on the `IndexedSlices` gradients."""
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync == 1


def sparse_steps_per_execution(steps=32):
    """Train steps per call into the graph for such small steps: `steps` on one replica (Python
    overhead would dominate otherwise), 1 under a multi-replica strategy (Keras 3.15's multi-step
    loop fails there with an unfed placeholder)."""
    import tensorflow as tf

    return steps if tf.distribute.get_strategy().num_replicas_in_sync == 1 else 1
