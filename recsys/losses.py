"""Pairwise ranking losses for implicit feedback (the book's 16.5).

Both take the scores of an observed (positive) item and of a sampled unobserved
(negative) item for the same user, shapes `(batch,)` or `(batch, 1)`, and return the
mean loss over the batch (a scalar); in a custom `train_step` under a distribution
strategy wrap the result in `common.distribute.scale_loss`. Keras is imported where a loss is
computed, so `LOSSES` (the `--loss` choices) is known without it.
"""


def bpr_loss(positive, negative):
    """Bayesian personalized ranking: mean of -log sigmoid(positive - negative)."""
    from keras import activations, ops

    return ops.mean(-activations.log_sigmoid(positive - negative))


def hinge_loss(positive, negative, margin=1.0):
    """Pairwise hinge: mean of max(0, margin - positive + negative)."""
    from keras import ops

    return ops.mean(ops.relu(margin - positive + negative))


LOSSES = {"bpr": bpr_loss, "hinge": hinge_loss}
