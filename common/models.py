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
    """Base model with a replica-invariant `train_step` around `training_loss`.

    `dense_gradients = True` (a class or instance attribute) turns embedding-lookup gradients
    (`tf.IndexedSlices`) into dense tensors before the optimizer. Keras' Adam densifies a sparse
    gradient anyway (`gradient - m` is a dense op), so it is the textbook Adam either way (every
    row's moments decay each step); the dense gradient only spares the conversion, and for small
    tables it is faster: ML-100K MF's step went from about 20 to 7 ms. Across replicas a dense
    gradient is all-reduced whole, so leave it off for huge tables, where an optimizer that
    updates only the looked-up rows pays (`recsys.lazy_adam.LazyAdam`).
    """

    dense_gradients = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def training_loss(self, batch):
        """Scalar per-replica mean loss of one batch (as the tf.data pipeline yields it)."""
        raise NotImplementedError

    def objective(self, loss, batch):
        """What the step differentiates, from this replica's mean `loss`: by default the mean scaled by
        `common.distribute.scale_loss` (the replicas' gradients then add up to the global batch's mean).
        A subclass may return the replica's sum instead (per-example SGD steps, as `recsys.mf`'s `sgd`)."""
        return scale_loss(loss)

    def train_step(self, batch):
        with tf.GradientTape() as tape:
            loss = self.training_loss(batch)
            objective = self.objective(loss, batch)
        grads = tape.gradient(objective, self.trainable_variables)
        if self.dense_gradients:
            grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    @property
    def metrics(self):
        return [self.loss_tracker]
