"""SSD training losses: the book's mean over all anchors, hard-negative mining, focal loss.

The book (D2L 14.7) averages the class cross-entropy over every anchor of an image and the
masked offset loss over every offset. With one banana per image that is ~10 positive anchors
against ~5,400 background ones, so the class predictor sits at "all background" for most
of training. Two standard remedies divide the sum of class and offset losses by the number
of positive anchors instead:

- hard-negative mining (SSD, Liu et al. 2016, section 2.2): per image, the positives plus
  the `neg_ratio` x as many background anchors with the highest cross-entropy;
- focal loss (RetinaNet, Lin et al. 2017): every anchor, its cross-entropy weighted by
  `alpha_t (1 - p_t) ** gamma`, which fades out the many easy background anchors. Used with
  class-head biases that start every anchor at background probability 0.99 (`prior_bias`).

All are per-image losses, so a batch split across replicas trains exactly like one.
"""
import keras
import numpy as np
import tensorflow as tf

from vision.boxes import box_iou

def offset_loss(bbox_preds, bbox_labels, bbox_masks, kind="l1"):
    """Masked per-offset loss `(batch, anchors * 4)`: |d| (`"l1"`) or smooth-L1 (`"smooth_l1"`)."""
    diff = (bbox_preds - bbox_labels) * bbox_masks
    if kind == "smooth_l1":
        return tf.where(tf.abs(diff) < 1, 0.5 * diff * diff, tf.abs(diff) - 0.5)
    return tf.abs(diff)


def hard_negatives(cls_loss, positive, neg_ratio, min_negatives=0):
    """`(batch, anchors)` bool: per image, the `neg_ratio * positives` (at least
    `min_negatives`) non-positive anchors with the largest `cls_loss`; ties go to the
    lower anchor index. Vectorized: one sort per image, no loop over anchors."""
    num_pos = tf.reduce_sum(tf.cast(positive, tf.int32), axis=1, keepdims=True)
    quota = tf.maximum(tf.cast(tf.round(neg_ratio * tf.cast(num_pos, tf.float32)), tf.int32), min_negatives)
    background_loss = tf.where(positive, -1.0, tf.stop_gradient(cls_loss))  # cross-entropy >= 0 > -1
    order = tf.argsort(background_loss, axis=1, direction="DESCENDING", stable=True)
    rank = tf.argsort(order, axis=1, stable=True)
    return (rank < quota) & ~positive


def focal_weights(ce, cls_labels, gamma=2.0, alpha=0.25):
    """`(batch, anchors)` focal-loss weights `alpha_t (1 - p_t) ** gamma` of the cross-entropy
    `ce`: `p_t = exp(-ce)` is the softmax probability of the true class, `alpha_t` = `alpha`
    for objects and `1 - alpha` for background."""
    alpha_t = tf.where(cls_labels > 0, alpha, 1 - alpha)
    return alpha_t * (1 - tf.exp(-ce)) ** gamma


def ignore_band(anchors, labels, cls_labels, low):
    """`(batch, A)` bool: background anchors (`cls_labels` 0) whose best IoU with a real box of
    `labels` `(batch, G, 5)` is at least `low`; `anchors` `(A, 4)`."""
    iou = box_iou(tf.reshape(anchors, [-1, 4])[None], labels[..., 1:])  # (batch, A, G)
    iou = tf.where((labels[..., 0] >= 0)[:, None, :], iou, -1.0)
    return (cls_labels == 0) & (tf.reduce_max(iou, axis=-1) >= low)


def prior_bias(num_anchors, num_classes, prior=0.01):
    """Class-head bias `(num_anchors * (num_classes + 1),)` whose softmax is `1 - prior` for
    background and `prior / num_classes` for each class, at every anchor (RetinaNet's init)."""
    per_anchor = [np.log(1 - prior)] + [np.log(prior / num_classes)] * num_classes
    return np.tile(np.asarray(per_anchor, np.float32), num_anchors)


def ssd_loss(cls_preds, bbox_preds, cls_labels, bbox_labels, bbox_masks, *, class_loss="focal",
             bbox_loss="l1", neg_ratio=3.0, min_negatives=16, gamma=2.0, alpha=0.25, ignore=None):
    """Per-image SSD loss `(batch,)` from logits `(batch, A, classes + 1)`, offsets `(batch, A * 4)`
    and the `multibox_target` triple.

    `"mean"`: the book's mean cross-entropy over all anchors plus the mean masked offset
    loss. `"hard_negative"`: (cross-entropy summed over positives and hard negatives +
    offset loss summed over positives) / max(positives, 1). `"focal"`: (focal loss summed
    over all anchors + offset loss summed over positives) / max(positives, 1).
    `ignore` `(batch, A)` bool: background anchors left out of the class loss (RetinaNet's
    band of anchors overlapping an object too little to be positive; `ignore_band`).
    """
    ce = keras.losses.sparse_categorical_crossentropy(cls_labels, cls_preds, from_logits=True)
    if ignore is not None:
        ce = tf.where(ignore, 0.0, ce)
    per_offset = offset_loss(bbox_preds, bbox_labels, bbox_masks, bbox_loss)
    if class_loss == "mean":
        return tf.reduce_mean(ce, axis=1) + tf.reduce_mean(per_offset, axis=1)
    positive = cls_labels > 0
    if class_loss == "focal":
        per_anchor = focal_weights(ce, cls_labels, gamma, alpha) * ce
    else:
        per_anchor = tf.where(positive | hard_negatives(ce, positive, neg_ratio, min_negatives), ce, 0.0)
    num_pos = tf.maximum(tf.reduce_sum(tf.cast(positive, tf.float32), axis=1), 1.0)
    return (tf.reduce_sum(per_anchor, axis=1) + tf.reduce_sum(per_offset, axis=1)) / num_pos
