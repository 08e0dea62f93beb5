"""`ScaledLossModel`: the train_step every recsys model shares.

Subclasses define `training_loss(batch)`, a per-replica mean (data term plus any L2
penalty on the parameters the batch touched). The step scales it with
`common.distribute.scale_loss` before taking gradients, so training on N replicas
gives the single-replica update, and reports the unscaled mean as `loss`.
(Keras' own `add_loss`/regularizer path is not scaled per replica, so it is not used.)

`hidden_sizes` parses an MLP width flag ("64,32,16"). `epoch_dataset` batches arrays in a
seeded NumPy order.
"""
import keras
import numpy as np
import tensorflow as tf

from common.distribute import scale_loss
from common.errors import UsageError


def hidden_sizes(text):
    """"64,32,16" -> [64, 32, 16]; UsageError for anything else."""
    try:
        sizes = [int(s) for s in str(text).split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise UsageError(f"--hidden must be comma-separated positive integers like 64,32,16, got {text!r}")
    return sizes


def epoch_dataset(arrays, batch_size, seed):
    """Batches of `arrays` (a nested tuple of equal-length arrays) in a NumPy permutation seeded by `seed`.

    Shuffling in NumPy rather than with `Dataset.shuffle` keeps the order identical
    however the strategy distributes the pipeline, so 1 and N replicas see the same batches.
    """
    leaves = tf.nest.flatten(arrays)
    order = np.random.default_rng(seed).permutation(len(leaves[0]))
    data = tf.nest.pack_sequence_as(arrays, [np.asarray(a)[order] for a in leaves])
    return tf.data.Dataset.from_tensor_slices(data).batch(batch_size).prefetch(tf.data.AUTOTUNE)


class ScaledLossModel(keras.Model):
    """Base model with a replica-invariant `train_step` around `training_loss`."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def training_loss(self, batch):
        """Scalar per-replica mean loss of one batch (as the tf.data pipeline yields it)."""
        raise NotImplementedError

    def train_step(self, batch):
        with tf.GradientTape() as tape:
            loss = self.training_loss(batch)
            scaled = scale_loss(loss)
        grads = tape.gradient(scaled, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    @property
    def metrics(self):
        return [self.loss_tracker]
