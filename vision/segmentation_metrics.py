"""Semantic segmentation scores from a confusion matrix: pixel accuracy and mean IoU.

`confusion_matrix` is TensorFlow ops (graph-safe, one bincount per batch), so it can
be accumulated batch by batch; the scores are read off the accumulated matrix with
NumPy. Pixels labelled `ignore_index` (VOC's 255 boundaries) are not counted.
"""
import numpy as np
import tensorflow as tf

IGNORE_INDEX = 255


def confusion_matrix(labels, predictions, num_classes, ignore_index=IGNORE_INDEX):
    """(num_classes, num_classes) int64 counts: row = true class, column = predicted class.

    `labels` and `predictions` are integer tensors of the same shape (e.g. (B, H, W));
    pixels whose label is `ignore_index` are skipped. Labels outside [0, num_classes)
    other than `ignore_index` are an error (the reader rejects them first).
    """
    labels = tf.reshape(tf.cast(labels, tf.int64), [-1])
    predictions = tf.reshape(tf.cast(predictions, tf.int64), [-1])
    valid = labels != ignore_index
    index = tf.boolean_mask(labels * num_classes + predictions, valid)
    counts = tf.math.bincount(index, minlength=num_classes * num_classes, maxlength=num_classes * num_classes,
                              dtype=tf.int64)
    return tf.reshape(counts, (num_classes, num_classes))


def pixel_accuracy(cm):
    """Fraction of counted pixels predicted correctly: trace / total."""
    cm = np.asarray(cm, np.float64)
    return float(np.trace(cm) / max(cm.sum(), 1.0))


def iou_per_class(cm):
    """IoU of each class, TP / (TP + FP + FN); NaN for a class absent from labels and predictions."""
    cm = np.asarray(cm, np.float64)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def mean_iou(cm):
    """Mean IoU over the classes that occur (in labels or predictions), as in VOC scoring."""
    iou = iou_per_class(cm)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0
