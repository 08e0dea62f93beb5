"""vision.ssd_loss: hard-negative mining and the two SSD losses, against hand-computed values."""
import numpy as np
import pytest
import tensorflow as tf

from vision.boxes import multibox_target
from vision.ssd_loss import hard_negatives, ignore_band, offset_loss, prior_bias, ssd_loss


def test_hard_negatives_picks_the_largest_background_losses():
    loss = tf.constant([[0.1, 0.5, 0.3, 0.9, 0.2, 0.3],
                        [0.4, 0.1, 0.2, 0.3, 0.8, 0.7]])
    positive = tf.constant([[False, False, False, True, False, False],
                            [True, False, False, False, False, False]])
    # Row 0: one positive (0.9, never a negative) -> 2 negatives: 0.5, then the first of the two 0.3s.
    # Row 1: one positive -> 0.8 and 0.7; the positive's 0.4 is skipped.
    got = hard_negatives(loss, positive, neg_ratio=2).numpy()
    np.testing.assert_array_equal(got, [[False, True, True, False, False, False],
                                        [False, False, False, False, True, True]])


def test_hard_negatives_minimum_without_positives():
    loss = tf.constant([[0.3, 0.1, 0.6, 0.2]])
    got = hard_negatives(loss, tf.zeros([1, 4], bool), neg_ratio=3, min_negatives=2).numpy()
    np.testing.assert_array_equal(got, [[True, False, True, False]])


def _ce(logits, label):
    return np.log(np.exp(logits).sum()) - logits[label]


def test_ssd_loss_hand_values():
    # One image, 4 anchors, 1 class: anchor 0 positive, 1..3 background.
    logits = np.array([[0.0, 1.0], [2.0, 0.0], [0.0, 0.0], [0.0, 3.0]], np.float32)
    labels = np.array([1, 0, 0, 0])
    ce = [_ce(lg, lb) for lg, lb in zip(logits, labels)]  # 0.313, 0.127, 0.693, 3.049
    preds = np.array([0.5, -0.5, 1.5, 0.0] + [0.3] * 12, np.float32)
    target = np.array([0.0, 0.0, 0.5, 2.0] + [0.0] * 12, np.float32)
    mask = np.array([1.0] * 4 + [0.0] * 12, np.float32)
    args = (tf.constant(logits[None]), tf.constant(preds[None]), tf.constant(labels[None]),
            tf.constant(target[None]), tf.constant(mask[None]))
    l1 = 0.5 + 0.5 + 1.0 + 2.0
    smooth = 0.125 + 0.125 + 0.5 + 1.5
    # Hard negatives, ratio 2: the positive plus the two worst background anchors (3 and 2), over 1 positive.
    got = ssd_loss(*args, class_loss="hard_negative", neg_ratio=2, min_negatives=0).numpy()
    assert got == pytest.approx([ce[0] + ce[3] + ce[2] + l1], rel=1e-5)
    got = ssd_loss(*args, class_loss="hard_negative", bbox_loss="smooth_l1", neg_ratio=1, min_negatives=0).numpy()
    assert got == pytest.approx([ce[0] + ce[3] + smooth], rel=1e-5)
    # The book's: mean cross-entropy over the 4 anchors + mean offset loss over the 16 offsets.
    got = ssd_loss(*args, class_loss="mean").numpy()
    assert got == pytest.approx([np.mean(ce) + l1 / 16], rel=1e-5)
    # Focal (gamma 2, alpha 0.25 for objects, 0.75 for background), every anchor, over 1 positive.
    p_true = np.exp(-np.array(ce))
    alpha = np.array([0.25, 0.75, 0.75, 0.75])
    got = ssd_loss(*args, class_loss="focal").numpy()
    assert got == pytest.approx([np.sum(alpha * (1 - p_true) ** 2 * ce) + l1], rel=1e-5)
    got = ssd_loss(*args, class_loss="focal", gamma=0.0, alpha=0.5).numpy()
    assert got == pytest.approx([0.5 * np.sum(ce) + l1], rel=1e-5)


def test_ignore_band_leaves_near_misses_out_of_the_class_loss():
    # One box (0, 0, .5, .5); anchors: the box itself (positive), one with IoU 0.45, one with IoU 0.
    anchors = tf.constant([[0, 0, .5, .5], [0, 0, .5, .225], [.5, .5, 1, 1]], tf.float32)
    labels = tf.constant([[[0, 0, 0, .5, .5], [-1, -1, -1, -1, -1]]], tf.float32)  # second row: padding
    bbox_labels, bbox_masks, cls_labels = multibox_target(anchors, labels)
    np.testing.assert_array_equal(cls_labels.numpy(), [[1, 0, 0]])
    ignore = ignore_band(anchors, labels, cls_labels, 0.4)
    np.testing.assert_array_equal(ignore.numpy(), [[False, True, False]])
    np.testing.assert_array_equal(ignore_band(anchors, labels, cls_labels, 0.5).numpy(), [[False, False, False]])
    logits = tf.constant([[[0.0, 1.0], [0.0, 3.0], [2.0, 0.0]]])
    ce = [_ce(np.array(lg), lb) for lg, lb in zip(logits.numpy()[0], [1, 0, 0])]
    zeros = tf.zeros([1, 12])
    args = (logits, zeros, cls_labels, zeros, zeros)
    # Hard negatives, ratio 1: without the band the near miss (CE 3.05) is the negative; with it, anchor 2.
    assert ssd_loss(*args, class_loss="hard_negative", neg_ratio=1, min_negatives=0).numpy() == pytest.approx(
        [ce[0] + ce[1]], rel=1e-5)
    assert ssd_loss(*args, class_loss="hard_negative", neg_ratio=1, min_negatives=0, ignore=ignore).numpy() == \
        pytest.approx([ce[0] + ce[2]], rel=1e-5)
    assert ssd_loss(*args, class_loss="focal", gamma=0.0, alpha=0.5, ignore=ignore).numpy() == pytest.approx(
        [0.5 * (ce[0] + ce[2])], rel=1e-5)


def test_prior_bias_softmax():
    bias = prior_bias(num_anchors=3, num_classes=2, prior=0.01).reshape(3, 3)
    probs = np.exp(bias) / np.exp(bias).sum(-1, keepdims=True)
    np.testing.assert_allclose(probs, [[0.99, 0.005, 0.005]] * 3, rtol=1e-6)


def test_offset_loss_masks_background():
    got = offset_loss(tf.constant([[3.0, -0.5]]), tf.constant([[1.0, 0.0]]), tf.constant([[1.0, 0.0]]),
                      "smooth_l1").numpy()
    np.testing.assert_allclose(got, [[1.5, 0.0]])
