"""Workarounds for Keras 3.15 bugs under tf.distribute.MultiWorkerMirroredStrategy.

keras-team/keras#20585: `Model.fit` under MultiWorkerMirroredStrategy fails twice,
(1) building the model by all-reducing a distributed batch, and (2) reducing scalar
step logs with `axis=0`. Both only touch multi-worker runs: `patch_multi_worker_reduce` is
applied when `common.distribute` makes a MultiWorkerMirroredStrategy, and acts only where
Keras's own multi-worker branch runs; tests/common/test_keras_compat.py fails once a Keras
upgrade makes it unnecessary (keras is pinned in pyproject.toml). `build_from_dataset` is the one
place the spine builds a model from a batch (Keras' private `_symbolic_build`), used here
and when resuming a lazily-built model.
"""
import tensorflow as tf
from keras.src.backend.tensorflow import trainer as _tf_trainer

_original_reduce_per_replica = _tf_trainer.reduce_per_replica


def _is_multi_worker(strategy):
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def reduce_per_replica(values, strategy, reduction):
    """Keras's `reduce_per_replica`, except where Keras takes its multi-worker branch (a collective
    all-reduce over several workers) with `mean`/`auto`: there a scalar is reduced without an axis
    (Keras passes `axis=0`, which fails on the scalar step logs) and a tensor along axis 0, as Keras does."""
    if not _tf_trainer._collective_all_reduce_multi_worker(strategy) or reduction not in ("auto", "mean"):
        return _original_reduce_per_replica(values, strategy, reduction)

    def reduce(value):
        if isinstance(value, tf.distribute.DistributedValues) or tf.is_tensor(value):
            distributed = isinstance(value, tf.distribute.DistributedValues)
            rank = value.values[0].shape.rank if distributed else value.shape.rank
            return strategy.reduce("MEAN", value, axis=0 if rank else None)
        return value

    return tf.nest.map_structure(reduce, values)


def patch_multi_worker_reduce():
    """Make Keras's trainer use `reduce_per_replica` (idempotent); called for a multi-worker strategy."""
    _tf_trainer.reduce_per_replica = reduce_per_replica


def _local_spec(dataset):
    """The element spec of one replica's batch of `dataset` (a `tf.data.Dataset` or a distributed one)."""
    return tf.nest.map_structure(lambda spec: getattr(spec, "_value_specs", [spec])[0], dataset.element_spec)


def build_from_dataset(model, dataset):
    """Build `model` (its variables, compiled metrics) from one local batch of `dataset`
    (of a distributed dataset: from its per-replica element spec, as `prepare_multi_worker`)."""
    batch = _local_spec(dataset) if isinstance(dataset, tf.distribute.DistributedDataset) else next(iter(dataset))
    with model.distribute_strategy.scope():
        model._symbolic_build(data_batch=batch)


def prepare_multi_worker(model, dataset):
    """Build `model` from the per-replica element spec of `dataset` before `fit` under multi-worker.

    Keras would all-reduce a distributed batch only to learn shapes, which fails for
    multi-worker collectives; building from the shapes and dtypes of one replica's batch gives
    the same variables without reading the dataset (a batch read here would start the epoch's
    input pipeline a second time).
    """
    if not _is_multi_worker(model.distribute_strategy) or "_maybe_symbolic_build" in vars(model):
        return
    with model.distribute_strategy.scope():
        model._symbolic_build(data_batch=_local_spec(dataset))
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
