"""`LazyAdam`: Adam that, for an embedding's `tf.IndexedSlices` gradient, updates only the looked-up rows.

Keras 3's `Adam.update_step` computes `gradient - m` on the whole moment table, which turns an
`IndexedSlices` gradient dense, so every step costs work proportional to the tables (14M
parameters for ML-25M-sized MF: about 80 ms a step) rather than to the batch. `LazyAdam` follows
TensorFlow Addons' `LazyAdam`: for an `IndexedSlices` gradient the duplicate indices are summed
first (`tf.unique` + `tf.math.unsorted_segment_sum`, as TF's sparse optimizers do), then for the
touched rows only

    m[rows] = beta_1 m[rows] + (1 - beta_1) g          v[rows] = beta_2 v[rows] + (1 - beta_2) g^2
    var[rows] -= lr sqrt(1 - beta_2^t) / (1 - beta_1^t) m[rows] / (sqrt(v[rows]) + epsilon)

with scatters; the other rows, and their moments, stay as they are (their moments do not decay,
which is what makes it "lazy" and not the textbook Adam). A dense gradient gets Keras' `Adam`
unchanged. TensorFlow backend only (the scatters go through `tf.Variable.scatter_update`), and not
for XLA: `tf.unique` has a data-dependent shape, so compile the model with `jit_compile=False`.
"""
import keras
import tensorflow as tf


def deduplicate(slices):
    """`slices` (a `tf.IndexedSlices`) with each index once, the values of repeated indices summed:
    (unique indices, summed values)."""
    unique, positions = tf.unique(slices.indices)
    summed = tf.math.unsorted_segment_sum(slices.values, positions, tf.shape(unique)[0])
    return unique, summed


@keras.saving.register_keras_serializable(package="dlsuite")
class LazyAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` whose update of an `IndexedSlices` gradient touches only its rows
    (TF-Addons `LazyAdam` semantics); same arguments, same slot variables (checkpoints interchange)."""

    def update_step(self, gradient, variable, learning_rate):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        indices, grad = deduplicate(gradient)
        grad = tf.cast(grad, dtype)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        alpha = tf.cast(learning_rate, dtype) * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        shape = None  # tf.shape(variable) would read the whole table (and make the scatters copy it)

        def rows(table):
            return tf.gather(table.value, indices)

        m_rows = beta_1 * rows(m) + (1 - beta_1) * grad
        v_rows = beta_2 * rows(v) + (1 - beta_2) * tf.square(grad)
        self.assign(m, tf.IndexedSlices(m_rows, indices, shape))
        self.assign(v, tf.IndexedSlices(v_rows, indices, shape))
        if self.amsgrad:
            v_hat = self._velocity_hats[index]
            v_rows = tf.maximum(rows(v_hat), v_rows)
            self.assign(v_hat, tf.IndexedSlices(v_rows, indices, shape))
        step_rows = alpha * m_rows / (tf.sqrt(v_rows) + tf.cast(self.epsilon, dtype))
        self.assign_sub(variable, tf.IndexedSlices(step_rows, indices, shape))
