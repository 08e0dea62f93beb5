"""recsys.ranking_model: the pairwise ranker's training loss by hand, for each loss."""
import math

import keras
import numpy as np
import pytest
from keras import ops

from recsys.ranking_model import PairwiseRanker


class ItemScores(PairwiseRanker):
    """score(context, i) = s_i, s = (0, 1, 2, 3); penalty 0.1 x mean s_i^2 of each side."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.s = self.add_weight(shape=(4,), initializer=keras.initializers.Constant([0.0, 1.0, 2.0, 3.0]))

    def score(self, context, items, training=False):
        return ops.take(self.s, items)

    def penalty(self, context, items):
        return 0.1 * ops.mean(ops.square(ops.take(self.s, items)))


@pytest.mark.parametrize("loss, pair_losses", [
    ("bpr", [math.log1p(math.exp(-3.0)), math.log1p(math.exp(1.0))]),  # -log sigmoid(3), -log sigmoid(-1)
    ("hinge", [0.0, 2.0]),  # max(0, 1 - 3), max(0, 1 + 1)
])
def test_training_loss_is_the_pair_loss_plus_both_sides_penalties(loss, pair_losses):
    model = ItemScores(loss=loss)
    batch = (np.zeros(2, np.int32), np.array([3, 1]), np.array([0, 2]))  # score differences 3 and -1
    penalties = 0.1 * (9 + 1) / 2 + 0.1 * (0 + 4) / 2
    assert float(model.training_loss(batch)) == pytest.approx(np.mean(pair_losses) + penalties, rel=1e-6)
    assert model.get_config()["loss"] == loss
    np.testing.assert_allclose(np.asarray(model((np.zeros(2, np.int32), np.array([2, 0])))), [2.0, 0.0])
