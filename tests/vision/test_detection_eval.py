"""vision.detection_eval: COCO mAP (through pycocotools), the book's class_err and bbox_mae."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from vision.detection_eval import _xywh, bbox_abs_errors, class_errors, coco_map

A = [0.1, 0.1, 0.5, 0.5]  # normalized corner boxes that do not overlap
B = [0.5, 0.5, 0.9, 0.9]
SQUARE = np.array([[100, 100]])


def test_coco_map_hand_values():
    sizes = np.array([[100, 100], [100, 100]])
    labels = np.array([[[0, 0.1, 0.1, 0.5, 0.5]], [[0, 0.5, 0.5, 0.9, 0.9]]], np.float32)
    perfect = np.array([[[0, 0.9, 0.1, 0.1, 0.5, 0.5]], [[0, 0.8, 0.5, 0.5, 0.9, 0.9]]], np.float32)
    assert coco_map(labels, perfect, sizes) == {"map": pytest.approx(1.0), "map50": pytest.approx(1.0)}
    # the second detection misses: ranked TP (recall .5, precision 1) then FP -> 101-point AP = 51/101
    missed = perfect.copy()
    missed[1, 0, 2:] = [0.0, 0.0, 0.1, 0.1]
    result = coco_map(labels, missed, sizes)
    assert result["map50"] == pytest.approx(51 / 101) and result["map"] == pytest.approx(51 / 101)
    # one image, box shifted to IoU 0.62: a hit at IoU thresholds .50, .55, .60 only -> mAP 3/10
    shifted = np.array([[[0, 0.9, 0.1, 0.1, 0.5, 0.5 * 0.62 + 0.1 * 0.38]]], np.float32)
    iou = (0.4 * (shifted[0, 0, 5] - 0.1)) / (0.4 * 0.4)
    assert iou == pytest.approx(0.62, abs=1e-6)
    result = coco_map(labels[:1], shifted, sizes[:1])
    assert result["map50"] == pytest.approx(1.0) and result["map"] == pytest.approx(0.3)
    # nothing detected
    assert coco_map(labels, np.full((2, 1, 6), -1, np.float32), sizes) == {"map": 0.0, "map50": 0.0}


def test_coco_map_ranks_by_score_and_matches_each_object_once():
    labels = np.array([[[0, *A]]], np.float32)
    # a false positive scored above the hit: precision 1/2 at every recall -> AP 0.5
    fp_first = np.array([[[0, 0.9, *B], [0, 0.5, *A]]], np.float32)
    assert coco_map(labels, fp_first, SQUARE) == {"map": pytest.approx(0.5), "map50": pytest.approx(0.5)}
    # the same box twice: the first is the hit, the second a false positive ranked after it -> AP 1
    twice = np.array([[[0, 0.9, *A], [0, 0.5, *A]]], np.float32)
    assert coco_map(labels, twice, SQUARE) == {"map": pytest.approx(1.0), "map50": pytest.approx(1.0)}
    # padding rows (class -1) in labels and detections are not objects and not detections
    padded_labels = np.array([[[0, *A], [-1, 0, 0, 0, 0]]], np.float32)
    padded = np.array([[[0, 0.9, *B], [0, 0.5, *A], [-1, 0.99, *A]]], np.float32)
    assert coco_map(padded_labels, padded, SQUARE) == coco_map(labels, fp_first, SQUARE)


def test_coco_map_counts_the_best_100_detections_of_an_image():
    labels = np.array([[[0, *A]]], np.float32)
    misses = np.tile(np.array([0, 0.9, *B], np.float32), (100, 1))
    hit = np.array([[0, 0.1, *A]], np.float32)
    # 99 false positives above the hit: it is the 100th, at precision 1/100 -> AP 0.01
    assert coco_map(labels, np.concatenate([misses[:99], hit])[None], SQUARE)["map50"] == pytest.approx(0.01)
    # 100 above it: the hit is the 101st detection, past COCO's 100 -> AP 0
    assert coco_map(labels, np.concatenate([misses, hit])[None], SQUARE) == {"map": 0.0, "map50": 0.0}


def test_coco_map_averages_over_the_classes_with_objects():
    sizes = np.array([[100, 100], [100, 100]])
    # class 0 found; the class-1 object detected as class 0 (a false positive of class 0, ranked below
    # its hit): class 0 AP 1, class 1 AP 0 -> mAP 0.5
    labels = np.array([[[0, *A]], [[1, *B]]], np.float32)
    wrong_class = np.array([[[0, 0.9, *A]], [[0, 0.8, *B]]], np.float32)
    assert coco_map(labels, wrong_class, sizes) == {"map": pytest.approx(0.5), "map50": pytest.approx(0.5)}
    # a detection of a class with no objects in the set is not averaged in (COCO's AP -1 class)
    extra_class = np.array([[[0, 0.9, *A], [1, 0.5, *B]]], np.float32)
    assert coco_map(labels[:1], extra_class, sizes[:1]) == {"map": pytest.approx(1.0), "map50": pytest.approx(1.0)}
    # no objects at all: 0, not an error
    empty = np.full((1, 1, 5), -1, np.float32)
    assert coco_map(empty, extra_class, sizes[:1]) == {"map": 0.0, "map50": 0.0}


def test_coco_map_per_class_ap_by_name():
    sizes = np.array([[100, 100], [100, 100]])
    labels = np.array([[[0, *A]], [[1, *B]]], np.float32)
    wrong_class = np.array([[[0, 0.9, *A]], [[0, 0.8, *B]]], np.float32)  # cat AP 1, dog AP 0 (see above)
    result = coco_map(labels, wrong_class, sizes, classes=("cat", "dog", "bird"))
    assert result["class_ap50"] == {"cat": pytest.approx(1.0), "dog": 0.0}  # bird: no objects, not listed
    assert result["class_ap"] == {"cat": pytest.approx(1.0), "dog": 0.0}
    assert np.mean(list(result["class_ap50"].values())) == pytest.approx(result["map50"])
    nothing = coco_map(labels, np.full((2, 1, 6), -1, np.float32), sizes, classes=("cat", "dog"))
    assert nothing["class_ap50"] == {"cat": 0.0, "dog": 0.0}


D = [0.5, 0.5, 0.7, 0.7]  # inside B, a quarter of its area: IoU 0.25, COCO's crowd IoU (over D's area) 1


@pytest.mark.parametrize("kind", ["crowd", "difficult"])
def test_coco_map_ignores_crowd_and_difficult_boxes(kind):
    labels, ignored = np.array([[[0, *A]]], np.float32), np.array([[[0, *B]]], np.float32)
    # a detection on the ignored box above the hit: a false positive if B were nothing (AP 0.5), ignored here
    on_ignored = np.array([[[0, 0.9, *B], [0, 0.5, *A]]], np.float32)
    assert coco_map(labels, on_ignored, SQUARE)["map50"] == pytest.approx(0.5)
    assert coco_map(labels, on_ignored, SQUARE, ignored=ignored, ignore_kind=kind)["map50"] == pytest.approx(1.0)
    # the ignored box missed costs no recall (as an object: recall 0.5 -> 51/101)
    only_a = np.array([[[0, 0.9, *A]]], np.float32)
    both = np.concatenate([labels, ignored], axis=1)
    assert coco_map(both, only_a, SQUARE)["map50"] == pytest.approx(51 / 101)
    assert coco_map(labels, only_a, SQUARE, ignored=ignored, ignore_kind=kind)["map50"] == pytest.approx(1.0)
    # a box on part of the region: COCO's crowd rule ignores it, VOC's difficult rule (IoU 0.25) does not
    part = np.array([[[0, 0.9, *D], [0, 0.5, *A]]], np.float32)
    expected = 1.0 if kind == "crowd" else 0.5
    assert coco_map(labels, part, SQUARE, ignored=ignored, ignore_kind=kind)["map50"] == pytest.approx(expected)


def test_boxes_go_to_pycocotools_in_pixels_of_each_image():
    boxes = np.array([[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0]])
    sizes = np.array([[200, 100], [64, 32]])  # (width, height)
    np.testing.assert_allclose(_xywh(boxes, sizes), [[20, 20, 80, 40], [0, 0, 64, 32]])


def _reference_ap(labels, detections, sizes, threshold):
    """COCOeval's bbox AP at one IoU threshold ("all" areas, 100 detections an image), written out for one
    class: per image, detections by score each take the unmatched object of highest IoU >= threshold; over all
    images by score, precision made monotone from the right, read at the 101 recall points 0, 0.01, ..., 1."""
    hits, scores, objects = [], [], 0
    for gt, det, (w, h) in zip(labels, detections, sizes):
        scale = np.array([w, h, w, h], np.float64)
        gt = gt[gt[:, 0] >= 0, 1:] * scale
        det = det[det[:, 0] >= 0]
        det = det[np.argsort(-det[:, 1], kind="stable")][:100]
        objects += len(gt)
        taken = np.zeros(len(gt), bool)
        for score, box in zip(det[:, 1], det[:, 2:] * scale):
            lo, hi = np.maximum(box[:2], gt[:, :2]), np.minimum(box[2:], gt[:, 2:])
            inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
            iou = inter / (np.prod(box[2:] - box[:2]) + np.prod(gt[:, 2:] - gt[:, :2], axis=1) - inter)
            iou[taken] = -1
            best = int(np.argmax(iou)) if len(gt) else -1
            hit = best >= 0 and iou[best] >= threshold
            if hit:
                taken[best] = True
            hits.append(hit)
            scores.append(score)
    hits = np.asarray(hits)[np.argsort(-np.asarray(scores), kind="stable")]
    tp = np.cumsum(hits)
    recall, precision = tp / objects, tp / np.arange(1, len(hits) + 1)
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    at = np.searchsorted(recall, np.linspace(0, 1, 101), side="left")
    return float(np.mean([precision[i] if i < len(precision) else 0.0 for i in at]))


def test_coco_map_matches_a_written_out_coco_evaluation():
    # Random boxes near the objects on images of different sizes, so hits, misses and duplicates mix at every
    # threshold; one class.
    rng = np.random.default_rng(3)
    images, objects, dets = 6, 3, 8
    corner = rng.uniform(0.05, 0.6, (images, objects, 2))
    gt_boxes = np.concatenate([corner, corner + rng.uniform(0.15, 0.35, (images, objects, 2))], axis=-1)
    labels = np.concatenate([np.zeros((images, objects, 1)), gt_boxes], axis=-1).astype(np.float32)
    labels[0, 2, 0] = labels[4, 1:, 0] = -1  # padding: images hold 1-3 objects
    source = gt_boxes[np.arange(images)[:, None], rng.integers(0, objects, (images, dets))]
    boxes = np.clip(source + rng.normal(0, 0.04, source.shape), 0, 1)
    boxes[..., 2:] = np.maximum(boxes[..., 2:], boxes[..., :2] + 0.01)
    detections = np.concatenate([np.zeros((images, dets, 1)), rng.uniform(0, 1, (images, dets, 1)), boxes],
                                axis=-1).astype(np.float32)
    detections[2, 5:, 0] = -1
    sizes = np.array([[100, 100], [200, 100], [64, 128], [300, 300], [50, 80], [640, 480]])
    result = coco_map(labels, detections, sizes)
    reference = [_reference_ap(labels, detections, sizes, t) for t in np.linspace(0.5, 0.95, 10)]
    assert 0.2 < reference[0] < 1 and reference[-1] < reference[0]  # a case where the thresholds differ
    assert result["map50"] == pytest.approx(reference[0], abs=1e-9)
    assert result["map"] == pytest.approx(np.mean(reference), abs=1e-9)


def test_class_err_and_bbox_mae_hand_values():
    cls_preds = tf.constant([[[2.0, 1.0], [0.0, 3.0], [1.0, 0.5]]])  # argmax 0, 1, 0
    errors = class_errors(cls_preds, tf.constant([[0, 0, 1]]))
    np.testing.assert_array_equal(errors.numpy(), [[0, 1, 1]])
    abs_err = bbox_abs_errors(tf.constant([[1.0, 2.0, 3.0, 4.0]]), tf.constant([[0.5, 2.5, 0.0, 0.0]]),
                              tf.constant([[1.0, 1.0, 0.0, 0.0]]))
    np.testing.assert_allclose(abs_err.numpy(), [[0.5, 0.5, 0, 0]])


def test_class_err_and_bbox_mae_averaged_give_the_books_ratios():
    # The book's class err: wrong anchors / all anchors; bbox mae: sum |offset error| over the positive
    # anchors' offsets / all offsets (masked ones count as 0). A Keras Mean over the per-anchor values is both.
    cls_preds = tf.constant([[[0.0, 1.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]])  # argmax 1, 0 | 1, 1
    cls_labels = tf.constant([[1, 1], [0, 1]], tf.float32)  # float labels are cast: wrong 0 | 1 of 2
    mean = keras.metrics.Mean()
    mean.update_state(class_errors(cls_preds, cls_labels))
    assert float(mean.result()) == pytest.approx(2 / 4)
    preds = tf.constant([[1.0, -1.0, 2.0, 0.0, 9.0, 9.0, 9.0, 9.0]])
    targets = tf.constant([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    masks = tf.constant([[1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]])  # anchor 1 is background
    mean = keras.metrics.Mean()
    mean.update_state(bbox_abs_errors(preds, targets, masks))
    assert float(mean.result()) == pytest.approx((1 + 1 + 2 + 0) / 8)
