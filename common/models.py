"""`ScaledLossModel`: a Keras model whose `train_step` is correct on any number of replicas.

Subclasses define `training_loss(batch)`, a per-replica mean (data term plus any penalty
on the parameters the batch touched). The step scales it with
`common.distribute.scale_loss` before taking gradients, so training on N replicas gives
the single-replica update, and reports the unscaled mean as `loss`. (Keras' own
`add_loss`/regularizer path is not scaled per replica, so it is not used.)
"""
import keras
import tensorflow as tf

from common.distribute import scale_loss


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
