"""`SummedLossModel`: the train step word2vec and GloVe share.

Subclasses define `example_losses(batch)`, one loss per example `(batch,)`. The step
differentiates their SUM (not the mean): with plain SGD on sparse embedding rows this
is the per-example learning rate of word2vec's and GloVe's own code, and summed over
replicas it is still the global batch's sum. Gradients are taken with respect to the
variables' values, so embedding rows arrive as `tf.IndexedSlices` (scatter updates).
The logged `loss` is the mean per example.
"""
import keras
import tensorflow as tf


class SummedLossModel(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.loss_tracker = keras.metrics.Mean(name="loss")

    @property
    def metrics(self):
        return [self.loss_tracker]

    def example_losses(self, batch):
        """Per-example losses `(batch,)` of one batch."""
        raise NotImplementedError

    def train_step(self, batch):
        variables = [v.value for v in self.trainable_variables]
        with tf.GradientTape() as tape:
            tape.watch(variables)
            losses = self.example_losses(batch)
            total = tf.reduce_sum(losses)
        grads = tape.gradient(total, variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        self.loss_tracker.update_state(tf.reduce_mean(losses))
        return {"loss": self.loss_tracker.result()}
