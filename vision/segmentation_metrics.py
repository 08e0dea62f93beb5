"""Semantic segmentation scores from a confusion matrix: pixel accuracy, per-class and mean IoU,
and the trimap (boundary-band) mean IoU.

`confusion_matrix` is TensorFlow ops (graph-safe, one bincount per batch), so it can
be accumulated batch by batch; the scores are read off the accumulated matrix with
NumPy. Pixels labelled `ignore_index` (VOC's 255 boundaries) are not counted.

The trimap score (Kohli et al. 2009, as DeepLab reports it on VOC) measures boundary
quality: VOC draws a "void" (255) band along every object outline, and the trimap of
width k keeps only the labelled pixels within k pixels of a void pixel, so its mIoU
counts the pixels where a coarse stride-32 prediction goes wrong and a finer head should not.
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


def iou_by_name(cm, names, digits=4):
    """{name: IoU rounded to `digits`} of the classes that occur (in labels or predictions), in index order.

    `names[c]` names class c; a class past the end of `names` (a model's output that the data's
    names do not cover) is reported as `class_<c>`.
    """
    return {(names[c] if c < len(names) else f"class_{c}"): round(float(v), digits)
            for c, v in enumerate(iou_per_class(cm)) if np.isfinite(v)}


def mean_iou(cm):
    """Mean IoU over the classes that occur (in labels or predictions), as in VOC scoring."""
    iou = iou_per_class(cm)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0


def trimap_labels(labels, width, ignore_index=IGNORE_INDEX, outside_index=None):
    """`labels` (B, H, W) with every pixel farther than `width` px from a void pixel set to `ignore_index`.

    "Within `width` px" is Chebyshev distance: a (2 width + 1)^2 max-pool of the void mask, one
    vectorised op. Void pixels stay void; pixels labelled `outside_index` (e.g. the padding of a
    batch of different-sized images) are neither void nor counted. Feed the result to
    `confusion_matrix` with the prediction to score the band.
    """
    labels = tf.convert_to_tensor(labels)
    void = tf.cast(tf.equal(labels, ignore_index), tf.float32)[..., None]
    near = tf.nn.max_pool2d(void, 2 * width + 1, 1, "SAME")[..., 0] > 0
    keep = near & tf.not_equal(labels, ignore_index)
    if outside_index is not None:
        keep &= tf.not_equal(labels, outside_index)
    return tf.where(keep, labels, tf.cast(ignore_index, labels.dtype))
