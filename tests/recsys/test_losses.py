"""recsys.losses: hand-computed BPR and hinge values."""
import math

import numpy as np
import pytest

from recsys.losses import bpr_loss, hinge_loss


def test_bpr_loss_hand_values():
    pos, neg = np.array([2.0, 0.0, -1.0]), np.array([0.0, 0.0, 1.0])
    expected = np.mean([math.log1p(math.exp(-d)) for d in (2.0, 0.0, -2.0)])
    assert float(bpr_loss(pos, neg)) == pytest.approx(expected, rel=1e-6)


def test_hinge_loss_hand_values():
    pos, neg = np.array([2.0, 0.5, -1.0]), np.array([0.0, 0.0, 1.0])
    assert float(hinge_loss(pos, neg)) == pytest.approx((0 + 0.5 + 3.0) / 3)
    assert float(hinge_loss(pos, neg, margin=0.0)) == pytest.approx(2.0 / 3)
