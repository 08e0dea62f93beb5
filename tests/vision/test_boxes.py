"""vision.boxes: the book's worked examples, hand-computed values and a NumPy reference."""
import numpy as np
import pytest
import tensorflow as tf

from vision import boxes as B

# D2L 14.4.3: the dog-and-cat image with two ground-truth boxes and five anchors.
GROUND_TRUTH = np.array([[0, 0.1, 0.08, 0.52, 0.92], [1, 0.55, 0.2, 0.9, 0.88]], np.float32)
FIVE_ANCHORS = np.array([[0, 0.1, 0.2, 0.3], [0.15, 0.2, 0.4, 0.4], [0.63, 0.05, 0.88, 0.98],
                         [0.66, 0.45, 0.8, 0.8], [0.57, 0.3, 0.92, 0.9]], np.float32)
# D2L 14.4.4: four predicted boxes for the NMS example.
NMS_ANCHORS = np.array([[0.1, 0.08, 0.52, 0.92], [0.08, 0.2, 0.56, 0.95],
                        [0.15, 0.3, 0.62, 0.91], [0.55, 0.2, 0.9, 0.88]], np.float32)
NMS_PROBS = np.array([[0] * 4, [0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.9]], np.float32)  # (classes+1, anchors)


def test_corner_center_round_trip():
    corner = np.array([[60.0, 45.0, 378.0, 516.0], [400.0, 112.0, 655.0, 493.0]])  # the book's dog and cat
    center = B.box_corner_to_center(corner).numpy()
    np.testing.assert_allclose(center, [[219, 280.5, 318, 471], [527.5, 302.5, 255, 381]])
    np.testing.assert_allclose(B.box_center_to_corner(center).numpy(), corner)


def test_box_iou_hand_values_and_batching():
    a = np.array([[0, 0, 2, 2], [0, 0, 1, 1]], np.float32)
    b = np.array([[1, 1, 3, 3], [5, 5, 6, 6], [0, 0, 2, 2]], np.float32)
    expected = [[1 / 7, 0, 1], [0, 0, 1 / 4]]
    np.testing.assert_allclose(B.box_iou(a, b).numpy(), expected, rtol=1e-6)
    batched = B.box_iou(np.stack([a, a[::-1]]), np.stack([b, b]))
    assert batched.shape == (2, 2, 3)
    np.testing.assert_allclose(batched.numpy()[1], np.array(expected)[::-1], rtol=1e-6)


def test_multibox_prior_book_example():
    # 561 x 728 image, sizes (.75, .5, .25), ratios (1, 2, .5): 5 anchors per pixel.
    anchors = B.multibox_prior(561, 728, [0.75, 0.5, 0.25], [1, 2, 0.5])
    assert anchors.shape == (561 * 728 * 5, 4)
    first = tf.reshape(anchors, (561, 728, 5, 4))[250, 250, 0].numpy()
    cx, cy, w, h = 250.5 / 728, 250.5 / 561, 0.75 * 561 / 728, 0.75
    np.testing.assert_allclose(first, [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], rtol=1e-5)
    np.testing.assert_allclose(first, [0.06, 0.07, 0.63, 0.82], atol=0.006)  # as printed in the book


def test_multibox_prior_ratio_shapes():
    a = B.multibox_prior(1, 1, [0.5], [1, 4]).numpy()  # one pixel: (s, r=1), (s, r=4)
    np.testing.assert_allclose(a, [[0.25, 0.25, 0.75, 0.75], [0, 0.375, 1.0, 0.625]], atol=1e-7)


def test_multibox_target_book_example():
    offsets, masks, classes = (t.numpy() for t in B.multibox_target(FIVE_ANCHORS[None], GROUND_TRUTH[None]))
    np.testing.assert_array_equal(classes, [[0, 1, 2, 0, 2]])
    np.testing.assert_array_equal(masks, [[0] * 4 + [1] * 8 + [0] * 4 + [1] * 4])
    book = [0, 0, 0, 0, 1.40, 10.0, 2.59, 7.18, -1.20, 0.269, 1.68, -1.57, 0, 0, 0, 0, -0.571, -1.00, 4.17e-06, 0.626]
    np.testing.assert_allclose(offsets[0], book, rtol=3e-3, atol=1e-5)
    # and exactly the formula, anchor 1 -> dog (box 0): centers (0.275, 0.3) vs (0.31, 0.5)
    np.testing.assert_allclose(offsets[0, 4:8], [10 * 0.035 / 0.25, 10 * 0.2 / 0.2, 5 * np.log(1e-6 + 0.42 / 0.25),
                                                 5 * np.log(1e-6 + 0.84 / 0.2)], rtol=1e-5)


def test_multibox_target_padding_and_batch_match_single_images():
    second = np.array([[0, 0.6, 0.0, 0.95, 0.95], [-1, -1, -1, -1, -1]], np.float32)  # one object + padding
    batch = np.stack([GROUND_TRUTH, second])
    together = [t.numpy() for t in B.multibox_target(FIVE_ANCHORS, batch)]
    alone = [t.numpy() for t in B.multibox_target(FIVE_ANCHORS, second[None, :1])]
    for t, a in zip(together, alone):
        np.testing.assert_allclose(t[1], a[0], rtol=1e-6)
    # the lone box overlaps anchor 2 most (IoU 0.66) -> only that anchor (plus >= 0.5 ones) is positive
    np.testing.assert_array_equal(together[2][1], [0, 0, 1, 0, 1])


def test_greedy_assignment_gives_every_box_an_anchor():
    anchors = np.array([[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]], np.float32)
    labels = np.array([[[0, 0.0, 0.0, 0.2, 0.2], [0, 0.6, 0.6, 0.8, 0.8]]], np.float32)  # IoUs 0.16 only
    _, _, classes = B.multibox_target(anchors, labels)
    np.testing.assert_array_equal(classes.numpy(), [[1, 1]])
    assigned = B.assign_anchor_to_bbox(labels[..., 1:], anchors).numpy()
    np.testing.assert_array_equal(assigned, [[0, 1]])


def test_offset_inverse_inverts_offset_boxes():
    rng = np.random.default_rng(0)
    lo = rng.uniform(0, 0.5, (50, 2))
    anchors = np.concatenate([lo, lo + rng.uniform(0.05, 0.5, (50, 2))], axis=1).astype(np.float32)
    lo = rng.uniform(0, 0.5, (50, 2))
    target = np.concatenate([lo, lo + rng.uniform(0.05, 0.5, (50, 2))], axis=1).astype(np.float32)
    back = B.offset_inverse(anchors, B.offset_boxes(anchors, target, eps=0)).numpy()
    np.testing.assert_allclose(back, target, atol=1e-5)


def _reference_nms(boxes, scores, threshold):
    """The book's NumPy-style loop: keep the best, drop those with IoU > threshold, repeat."""
    order = list(np.argsort(-scores, kind="stable"))
    keep = []
    while order:
        i = order.pop(0)
        keep.append(i)
        iou = B.box_iou(boxes[i:i + 1], boxes[order]).numpy()[0] if order else np.array([])
        order = [j for j, v in zip(order, iou) if v <= threshold]
    return keep


def test_nms_book_example_and_reference():
    keep = B.nms(NMS_ANCHORS, NMS_PROBS[1:].max(0), 0.5).numpy()
    np.testing.assert_array_equal(keep, [0, 3])  # the dog box (0.9) and the cat box (0.9); 1 and 2 suppressed
    rng = np.random.default_rng(1)
    lo = rng.uniform(0, 0.8, (300, 2))
    boxes = np.concatenate([lo, lo + rng.uniform(0.02, 0.3, (300, 2))], axis=1).astype(np.float32)
    scores = rng.permutation(300).astype(np.float32) / 300  # distinct scores: a unique answer
    np.testing.assert_array_equal(B.nms(boxes, scores, 0.3).numpy(), _reference_nms(boxes, scores, 0.3))


def test_multibox_detection_book_example():
    out = B.multibox_detection(NMS_PROBS.T[None], np.zeros((1, 16), np.float32), NMS_ANCHORS, 0.5).numpy()
    expected = [[0, 0.9, 0.1, 0.08, 0.52, 0.92], [1, 0.9, 0.55, 0.2, 0.9, 0.88],
                [-1, 0.8, 0.08, 0.2, 0.56, 0.95], [-1, 0.7, 0.15, 0.3, 0.62, 0.91]]
    np.testing.assert_allclose(out[0], expected, rtol=1e-6)


def test_multibox_detection_batched_and_low_scores():
    probs = np.stack([NMS_PROBS.T, np.array([[0.995, 0.005, 0], [0.5, 0.5, 0], [0.2, 0.0, 0.8],
                                             [0.1, 0.0, 0.9]], np.float32)])
    out = B.multibox_detection(probs, np.zeros((2, 4, 4), np.float32), NMS_ANCHORS, 0.5).numpy()
    np.testing.assert_allclose(out[0, :, :2], [[0, 0.9], [1, 0.9], [-1, 0.8], [-1, 0.7]], rtol=1e-6)
    # image 2: boxes 3 (0.9) and 2 (0.8) overlap little (IoU 0.08) -> both kept; box 1 (0.5) overlaps
    # box 2 with IoU 0.63 -> suppressed; box 0 scores 0.005 < 0.01 -> class -1, confidence 1 - 0.005
    # as in the book. Non-kept rows follow in anchor order.
    np.testing.assert_allclose(out[1, :, :2], [[1, 0.9], [1, 0.8], [-1, 0.995], [-1, 0.5]], rtol=1e-6)
    np.testing.assert_allclose(out[1, :, 2:], NMS_ANCHORS[[3, 2, 0, 1]], rtol=1e-6)


def test_graph_safe_under_tf_function_with_unknown_batch():
    @tf.function(input_signature=[tf.TensorSpec([None, None, 5], tf.float32)])
    def targets(labels):
        return B.multibox_target(FIVE_ANCHORS, labels)

    offsets, masks, classes = targets(tf.constant(GROUND_TRUTH[None]))
    np.testing.assert_array_equal(classes.numpy(), [[0, 1, 2, 0, 2]])

    @tf.function(input_signature=[tf.TensorSpec([None, 4, 3], tf.float32), tf.TensorSpec([None, 16], tf.float32)])
    def detect(probs, offsets):
        return B.multibox_detection(probs, offsets, NMS_ANCHORS)

    assert detect(tf.constant(NMS_PROBS.T[None]), tf.zeros([1, 16])).shape == (1, 4, 6)


@pytest.mark.parametrize("threshold", [0.3, 0.7])
def test_nms_threshold_is_strictly_greater(threshold):
    # IoU of these two boxes is exactly 0.5: suppressed only when the threshold is below it
    boxes = np.array([[0, 0, 3, 1], [1, 0, 4, 1]], np.float32)  # inter 2, union 4
    keep = B.nms(boxes, np.array([0.9, 0.8], np.float32), threshold).numpy()
    assert list(keep) == ([0] if threshold < 0.5 else [0, 1])


@pytest.mark.parametrize("classes", [1, 3])
def test_top_detections_equal_the_books_detection_rows(classes):
    # One class: tf.image.combined_non_max_suppression; several: multibox_detection itself. Either way the
    # first rows of the book's class-agnostic output, on random scores (no ties) and offsets.
    rng = np.random.default_rng(4)
    anchors = B.multibox_prior(8, 8, (0.2, 0.35), (1, 2, 0.5))
    n = anchors.shape[0]
    probs = tf.nn.softmax(tf.constant(rng.normal(0, 2, (3, n, classes + 1)), tf.float32), axis=-1)
    offsets = tf.constant(rng.normal(0, 1, (3, n * 4)), tf.float32)
    book = B.multibox_detection(probs, offsets, anchors, 0.3).numpy()[:, :50]
    ours = B.top_detections(probs, offsets, anchors, 0.3, max_detections=50).numpy()
    kept = book[..., 0] >= 0
    np.testing.assert_array_equal(ours[..., 0] >= 0, kept)
    np.testing.assert_allclose(ours[kept], book[kept], atol=1e-6)
    assert kept.sum(axis=1).min() > 5
