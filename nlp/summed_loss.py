"""`SummedLossModel`: the train step word2vec and GloVe share.

Subclasses define `example_losses(batch)`, one loss per example `(batch,)`. The step
differentiates their SUM (not the mean): with plain SGD on sparse embedding rows this
is the per-example learning rate of word2vec's and GloVe's own code, and summed over
replicas it is still the global batch's sum. Gradients are taken with respect to the
variables' values, so embedding rows arrive as `tf.IndexedSlices` (scatter updates).
The logged `loss` is the mean per example (`example_count`: per row unless a
subclass counts otherwise, e.g. word2vec's pairs in a centre-grouped batch).
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

    def example_count(self, batch):
        """How many examples the logged loss averages over (None: one per row of `batch`)."""
        return None

    def train_step(self, batch):
        variables = [v.value for v in self.trainable_variables]
        with tf.GradientTape() as tape:
            tape.watch(variables)
            losses = self.example_losses(batch)
            total = tf.reduce_sum(losses)
        grads = tape.gradient(total, variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        count = self.example_count(batch)
        if count is None:
            self.loss_tracker.update_state(tf.reduce_mean(losses))
        else:  # weighted by the count, so the replicas' sums add up to the global batch's mean
            self.loss_tracker.update_state(total / count, sample_weight=count)
        return {"loss": self.loss_tracker.result()}
