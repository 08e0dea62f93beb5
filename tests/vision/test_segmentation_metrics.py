"""vision.segmentation_metrics: the confusion matrix, pixel accuracy, per-class and mean IoU, the trimap band."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn import metrics

from vision.segmentation_metrics import (confusion_matrix, iou_by_name, iou_per_class, mean_iou, pixel_accuracy,
                                         trimap_labels)


def test_confusion_matrix_scores_by_hand():
    labels = np.array([[0, 0, 1, 1], [2, 255, 2, 1]])
    preds = np.array([[0, 1, 1, 1], [2, 0, 0, 1]])
    cm = confusion_matrix(labels, preds, 3).numpy()
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 3, 0], [1, 0, 1]])
    assert pixel_accuracy(cm) == pytest.approx(5 / 7)
    # IoU: class 0: 1/(2+2-1)=1/3, class 1: 3/(3+4-3)=3/4, class 2: 1/(2+1-1)=1/2.
    np.testing.assert_allclose(iou_per_class(cm), [1 / 3, 3 / 4, 1 / 2])
    assert mean_iou(cm) == pytest.approx((1 / 3 + 3 / 4 + 1 / 2) / 3)
    # Classes absent from both labels and predictions do not count.
    assert mean_iou(confusion_matrix(labels, preds, 21).numpy()) == pytest.approx(mean_iou(cm))
    # By name, only the classes that occur; an index past the names is class_<index>.
    assert iou_by_name(cm, ("background", "circle", "square")) == {"background": 0.3333, "circle": 0.75, "square": 0.5}
    assert iou_by_name(cm, ("background", "circle")) == {"background": 0.3333, "circle": 0.75, "class_2": 0.5}


def test_confusion_matrix_matches_keras_mean_iou():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 6, (4, 33, 17))
    labels[rng.random(labels.shape) < 0.1] = 255
    preds = np.where(rng.random(labels.shape) < 0.6, np.where(labels == 255, 0, labels), rng.integers(0, 6, labels.shape))
    cm = confusion_matrix(labels, preds, 21).numpy()
    reference = keras.metrics.MeanIoU(num_classes=21, ignore_class=255)
    reference.update_state(labels, preds)
    valid = labels != 255
    assert cm.sum() == valid.sum()
    # Keras also averages over the classes that occur.
    assert mean_iou(cm) == pytest.approx(float(reference.result()), rel=1e-5)
    assert pixel_accuracy(cm) == pytest.approx((labels == preds)[valid].mean())


def test_trimap_keeps_labelled_pixels_near_void_by_hand():
    labels = np.array([[[0, 0, 0, 0, 0, 0, 0],
                        [0, 0, 0, 0, 0, 0, 0],
                        [0, 0, 255, 255, 255, 0, 0],
                        [0, 0, 255, 1, 255, 0, 0],
                        [0, 0, 255, 255, 255, 0, 0],
                        [0, 0, 0, 0, 0, 0, 254],
                        [0, 0, 0, 0, 0, 0, 254]]])
    x = 255
    # Width 1: the ring around the void square and its centre; the rest (and the 254 padding) is dropped.
    np.testing.assert_array_equal(trimap_labels(labels, 1, outside_index=254).numpy(), [[
        [x, x, x, x, x, x, x],
        [x, 0, 0, 0, 0, 0, x],
        [x, 0, x, x, x, 0, x],
        [x, 0, x, 1, x, 0, x],
        [x, 0, x, x, x, 0, x],
        [x, 0, 0, 0, 0, 0, x],
        [x, x, x, x, x, x, x]]])
    band2 = trimap_labels(labels, 2, outside_index=254).numpy()
    # Width 2 reaches every corner of the 7x7 (Chebyshev distance 2 from the void square): all but void and padding.
    np.testing.assert_array_equal(band2 == x, (labels == 255) | (labels == 254))
    assert trimap_labels(np.pad(labels, ((0, 0), (0, 0), (0, 1))), 2).numpy()[0, 0, 7] == x  # 3 px away: dropped
    # Scored: predicting the centre pixel wrong costs class 1 its whole trimap IoU.
    predicted = np.zeros((1, 7, 7), np.int64)
    band_cm = confusion_matrix(trimap_labels(labels, 1), predicted, 2).numpy()
    np.testing.assert_array_equal(band_cm, [[16, 0], [1, 0]])
    assert mean_iou(band_cm) == pytest.approx((16 / 17 + 0) / 2)


def _random_case(seed, classes=6, shape=(4, 33, 17)):
    """Labels with about 10% void (255) pixels and predictions right about 60% of the time."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, shape)
    labels[rng.random(shape) < 0.1] = 255
    preds = np.where(rng.random(shape) < 0.6, np.where(labels == 255, 0, labels), rng.integers(0, classes, shape))
    return labels, preds


def test_scores_match_scikit_learn():
    labels, preds = _random_case(2, classes=5)
    valid = labels != 255
    cm = confusion_matrix(labels, preds, 7).numpy()  # classes 5 and 6 never occur
    np.testing.assert_array_equal(cm, metrics.confusion_matrix(labels[valid], preds[valid], labels=range(7)))
    assert pixel_accuracy(cm) == pytest.approx(metrics.accuracy_score(labels[valid], preds[valid]))
    jaccard = metrics.jaccard_score(labels[valid], preds[valid], labels=range(5), average=None)
    np.testing.assert_allclose(iou_per_class(cm)[:5], jaccard)
    assert np.isnan(iou_per_class(cm)[5:]).all()  # absent from labels and predictions: not scored
    assert mean_iou(cm) == pytest.approx(jaccard.mean())


def test_confusion_matrix_adds_up_over_batches_in_a_graph():
    labels, preds = _random_case(4)
    batch_counts = tf.function(lambda y, p: confusion_matrix(y, p, 21),
                               input_signature=[tf.TensorSpec((None, None, None), tf.int64)] * 2)
    summed = sum(batch_counts(labels[i:i + 1], preds[i:i + 1]).numpy() for i in range(len(labels)))
    np.testing.assert_array_equal(summed, confusion_matrix(labels, preds, 21).numpy())
    assert summed.dtype == np.int64 and summed.sum() == (labels != 255).sum()


def test_scores_of_nothing_counted_are_zero():
    empty = np.zeros((3, 3), np.int64)
    assert pixel_accuracy(empty) == 0.0 and mean_iou(empty) == 0.0 and iou_by_name(empty, ("a", "b", "c")) == {}
    # all pixels void: nothing counted
    void = np.full((1, 2, 2), 255)
    assert confusion_matrix(void, np.zeros_like(void), 3).numpy().sum() == 0
    # a class only predicted, never labelled, has IoU 0 and counts in the mean
    cm = np.array([[2, 1], [0, 0]])
    np.testing.assert_allclose(iou_per_class(cm), [2 / 3, 0])
    assert mean_iou(cm) == pytest.approx(1 / 3) and pixel_accuracy(cm) == pytest.approx(2 / 3)
