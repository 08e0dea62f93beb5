"""Bounding-box geometry for anchor-based detection (D2L 14.3-14.4), in TensorFlow ops.

Every function is batched where the book loops over images, graph-safe (no `.numpy()`,
usable inside `tf.function` and `tf.data`), and vectorized over boxes. Boxes are
`(xmin, ymin, xmax, ymax)` ("corner") or `(cx, cy, w, h)` ("center"), in any unit;
anchors and labels are in units of the image size (0..1), as in the book.

Labels of a batch of images are `(batch, objects, 5)` rows `(class, xmin, ymin, xmax, ymax)`
with classes counted from 0; rows with a negative class are padding (images with fewer
objects than the widest one), which the book's one-banana-per-image data never needs.
"""
import numpy as np
import tensorflow as tf


def box_corner_to_center(boxes):
    """`(..., 4)` corner boxes `(x1, y1, x2, y2)` -> center boxes `(cx, cy, w, h)`."""
    x1, y1, x2, y2 = tf.unstack(tf.convert_to_tensor(boxes), axis=-1)
    return tf.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=-1)


def box_center_to_corner(boxes):
    """`(..., 4)` center boxes `(cx, cy, w, h)` -> corner boxes `(x1, y1, x2, y2)`."""
    cx, cy, w, h = tf.unstack(tf.convert_to_tensor(boxes), axis=-1)
    return tf.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)


def box_area(boxes):
    """`(..., 4)` corner boxes -> `(...)` areas (zero for degenerate boxes)."""
    boxes = tf.convert_to_tensor(boxes)
    return tf.maximum(boxes[..., 2] - boxes[..., 0], 0) * tf.maximum(boxes[..., 3] - boxes[..., 1], 0)


def box_iou(boxes1, boxes2):
    """Pairwise intersection over union (Jaccard index) of corner boxes.

    `boxes1` is `(..., N, 4)` and `boxes2` `(..., M, 4)` with broadcastable leading
    (batch) dimensions; returns `(..., N, M)`. Two empty boxes have IoU 0.
    """
    boxes1 = tf.convert_to_tensor(boxes1)
    boxes2 = tf.convert_to_tensor(boxes2, dtype=boxes1.dtype)
    upper_left = tf.maximum(boxes1[..., :, None, :2], boxes2[..., None, :, :2])
    lower_right = tf.minimum(boxes1[..., :, None, 2:], boxes2[..., None, :, 2:])
    inter = tf.reduce_prod(tf.maximum(lower_right - upper_left, 0), axis=-1)
    union = box_area(boxes1)[..., :, None] + box_area(boxes2)[..., None, :] - inter
    return tf.math.divide_no_nan(inter, union)


def multibox_prior(height, width, sizes, ratios):
    """Anchor boxes centred on every pixel of a `height x width` feature map.

    With n `sizes` s and m `ratios` r, each pixel gets the book's n + m - 1 anchors:
    (s_1, r_1), ..., (s_n, r_1), (s_1, r_2), ..., (s_1, r_m), of width
    `s * sqrt(r) * height / width` and height `s / sqrt(r)` (fractions of the image).
    Returns `(height * width * (n + m - 1), 4)` corner boxes in image units, ordered
    row by row, pixel by pixel, anchor by anchor (the book's `(1, ..., 4)` squeezed).
    The shape is fixed by Python ints, so the result is a constant in a graph.
    """
    sizes = np.asarray(sizes, dtype=np.float64)
    ratios = np.asarray(ratios, dtype=np.float64)
    w = np.concatenate([sizes * np.sqrt(ratios[0]), sizes[0] * np.sqrt(ratios[1:])]) * height / width
    h = np.concatenate([sizes / np.sqrt(ratios[0]), sizes[0] / np.sqrt(ratios[1:])])
    center_y = (np.arange(height) + 0.5) / height
    center_x = (np.arange(width) + 0.5) / width
    shift_y, shift_x = np.meshgrid(center_y, center_x, indexing="ij")
    centers = np.stack([shift_x, shift_y, shift_x, shift_y], axis=-1).reshape(-1, 1, 4)
    half = np.stack([-w, -h, w, h], axis=-1)[None] / 2
    return tf.constant((centers + half).reshape(-1, 4), dtype=tf.float32)


def assign_anchor_to_bbox(ground_truth, anchors, iou_threshold=0.5, valid=None):
    """Assign ground-truth boxes to anchors, batched (D2L's `assign_anchor_to_bbox`).

    `ground_truth` `(batch, G, 4)`, `anchors` `(A, 4)`, `valid` an optional `(batch, G)`
    boolean mask of real (non-padding) boxes. First every anchor whose best IoU is at
    least `iou_threshold` takes that box; then, greedily G times, the largest remaining
    entry of the IoU matrix assigns its anchor to its box and discards that row and
    column, so each box gets at least one anchor. Returns `(batch, A)` int32 box indices,
    -1 for background. The greedy pass is a `tf.while_loop` over the G box slots (it is
    sequential by definition); each step is one vectorized argmax over all anchors and
    boxes of all images.
    """
    ground_truth = tf.convert_to_tensor(ground_truth, tf.float32)
    anchors = tf.convert_to_tensor(anchors, tf.float32)
    batch = tf.shape(ground_truth)[0]
    num_gt = tf.shape(ground_truth)[1]
    num_anchors = tf.shape(anchors)[0]
    jaccard = box_iou(anchors[None], ground_truth)  # (batch, A, G)
    if valid is not None:
        jaccard = tf.where(valid[:, None, :], jaccard, -1.0)
    max_ious = tf.reduce_max(jaccard, axis=-1)
    best = tf.argmax(jaccard, axis=-1, output_type=tf.int32)
    assigned = tf.where(max_ious >= iou_threshold, best, -1)

    def step(i, jaccard, assigned):
        flat = tf.reshape(jaccard, [batch, -1])
        idx = tf.argmax(flat, axis=-1, output_type=tf.int32)
        found = tf.reduce_max(flat, axis=-1) >= 0  # a real box not yet taken
        box_idx, anc_idx = idx % num_gt, idx // num_gt
        anc_hit = tf.equal(tf.range(num_anchors)[None], anc_idx[:, None]) & found[:, None]  # (batch, A)
        box_hit = tf.equal(tf.range(num_gt)[None], box_idx[:, None]) & found[:, None]  # (batch, G)
        new_assigned = tf.where(anc_hit, box_idx[:, None], assigned)
        new_jaccard = tf.where(anc_hit[:, :, None] | box_hit[:, None, :], -1.0, jaccard)
        return i + 1, tf.ensure_shape(new_jaccard, jaccard.shape), tf.ensure_shape(new_assigned, assigned.shape)

    _, _, assigned = tf.while_loop(lambda i, *_: i < num_gt, step, (tf.constant(0), jaccard, assigned))
    return assigned


def offset_boxes(anchors, assigned_bb, eps=1e-6):
    """Offsets of boxes relative to anchors with the book's scaling, `(..., 4)` each.

    `(10 (x_b - x_a) / w_a, 10 (y_b - y_a) / h_a, 5 log(w_b / w_a), 5 log(h_b / h_a))` in
    center coordinates (means 0, standard deviations 0.1 and 0.2).
    """
    c_anc = box_corner_to_center(anchors)
    c_bb = box_corner_to_center(assigned_bb)
    offset_xy = 10 * (c_bb[..., :2] - c_anc[..., :2]) / c_anc[..., 2:]
    offset_wh = 5 * tf.math.log(eps + c_bb[..., 2:] / c_anc[..., 2:])
    return tf.concat([offset_xy, offset_wh], axis=-1)


def offset_inverse(anchors, offset_preds):
    """Corner boxes predicted by `offset_preds` `(..., 4)` on `anchors` `(..., 4)`.

    The inverse of `offset_boxes`.
    """
    anc = box_corner_to_center(anchors)
    offset_preds = tf.convert_to_tensor(offset_preds, anc.dtype)
    xy = offset_preds[..., :2] * anc[..., 2:] / 10 + anc[..., :2]
    wh = tf.exp(offset_preds[..., 2:] / 5) * anc[..., 2:]
    return box_center_to_corner(tf.concat([xy, wh], axis=-1))


def multibox_target(anchors, labels, iou_threshold=0.5):
    """Training targets of anchors for a batch of labelled images (D2L's `multibox_target`).

    `anchors` `(A, 4)` (a leading 1 is accepted), `labels` `(batch, G, 5)` rows
    `(class, xmin, ymin, xmax, ymax)`, negative class = padding. Returns the book's
    triple: `bbox_offset` `(batch, A * 4)` (offsets to the assigned box, 0 for
    background), `bbox_mask` `(batch, A * 4)` (1 for anchors with an object) and
    `class_labels` `(batch, A)` int32 (0 background, c + 1 for class c).
    """
    anchors = tf.reshape(tf.convert_to_tensor(anchors, tf.float32), [-1, 4])
    labels = tf.convert_to_tensor(labels, tf.float32)
    valid = labels[..., 0] >= 0
    gt_boxes = labels[..., 1:]
    assigned = assign_anchor_to_bbox(gt_boxes, anchors, iou_threshold, valid)  # (batch, A)
    positive = assigned >= 0
    idx = tf.maximum(assigned, 0)
    class_labels = tf.where(positive, tf.cast(tf.gather(labels[..., 0], idx, batch_dims=1), tf.int32) + 1, 0)
    assigned_bb = tf.gather(gt_boxes, idx, batch_dims=1)  # (batch, A, 4)
    mask = tf.cast(positive, tf.float32)[..., None] * tf.ones([1, 1, 4])
    # Background anchors get their own box as "target" (offset ~0) before masking, so
    # no log(0) ever enters the graph.
    assigned_bb = tf.where(mask > 0, assigned_bb, anchors[None])
    offset = offset_boxes(anchors[None], assigned_bb) * mask
    batch = tf.shape(labels)[0]
    return tf.reshape(offset, [batch, -1]), tf.reshape(mask, [batch, -1]), class_labels


def nms(boxes, scores, iou_threshold, score_threshold=float("-inf"), max_output_size=None):
    """Non-maximum suppression of one image's corner boxes `(N, 4)` with `scores` `(N,)`.

    Returns the int32 indices of the kept boxes in decreasing score order: a box is
    dropped when its IoU with a higher-scoring kept box exceeds `iou_threshold` (the
    book's rule), or when its score is below `score_threshold`. Uses TensorFlow's
    native kernel (`tf.image.non_max_suppression`).
    """
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    if max_output_size is None:
        max_output_size = tf.shape(boxes)[0]
    # The kernel reads (y1, x1, y2, x2); IoU is symmetric in x and y, so (x1, y1, x2, y2) works as is.
    return tf.image.non_max_suppression(boxes, tf.convert_to_tensor(scores, tf.float32), max_output_size,
                                        iou_threshold=iou_threshold, score_threshold=score_threshold)


def multibox_detection(cls_probs, offset_preds, anchors, nms_threshold=0.5, pos_threshold=0.009999999):
    """Predicted boxes after class-agnostic NMS (D2L's `multibox_detection`), batched.

    `cls_probs` `(batch, A, classes + 1)` (background first; the book passes the
    transpose), `offset_preds` `(batch, A * 4)` or `(batch, A, 4)`, `anchors` `(A, 4)`.
    Returns `(batch, A, 6)` rows `(class, confidence, xmin, ymin, xmax, ymax)`: first the
    boxes NMS keeps, by decreasing confidence, then the others in anchor order with
    class -1. As in the book, boxes whose confidence is below `pos_threshold` get class
    -1 and confidence `1 - confidence`. (The book also runs NMS over those low boxes;
    here they skip it, which only changes the order of the class -1 rows.)
    """
    cls_probs = tf.convert_to_tensor(cls_probs, tf.float32)
    anchors = tf.reshape(tf.convert_to_tensor(anchors, tf.float32), [-1, 4])
    num_anchors = tf.shape(anchors)[0]
    offset_preds = tf.reshape(tf.convert_to_tensor(offset_preds, tf.float32), [tf.shape(cls_probs)[0], -1, 4])
    conf = tf.reduce_max(cls_probs[..., 1:], axis=-1)
    class_id = tf.argmax(cls_probs[..., 1:], axis=-1, output_type=tf.int32)
    predicted_bb = offset_inverse(anchors[None], offset_preds)

    def keep_rank(args):
        boxes, scores = args
        keep = nms(boxes, scores, nms_threshold, score_threshold=pos_threshold)
        # Rank of every anchor in the output: kept boxes first, in NMS order.
        rank = num_anchors + tf.range(num_anchors)
        return tf.tensor_scatter_nd_update(rank, keep[:, None], tf.range(tf.size(keep)))

    rank = tf.map_fn(keep_rank, (predicted_bb, conf), fn_output_signature=tf.int32)
    order = tf.argsort(rank, axis=-1, stable=True)
    kept = tf.gather(rank, order, batch_dims=1) < num_anchors
    conf = tf.gather(conf, order, batch_dims=1)
    class_id = tf.where(kept, tf.gather(class_id, order, batch_dims=1), -1)
    below = conf < pos_threshold
    class_id = tf.where(below, -1, class_id)
    conf = tf.where(below, 1 - conf, conf)
    boxes = tf.gather(predicted_bb, order, batch_dims=1)
    return tf.concat([tf.cast(class_id, tf.float32)[..., None], conf[..., None], boxes], axis=-1)


def top_detections(cls_probs, offset_preds, anchors, nms_threshold=0.5, max_detections=100,
                   pos_threshold=0.009999999):
    """The first `max_detections` rows of `multibox_detection` (same arguments), batched.

    With one object class (the banana set) this is TensorFlow's batched
    `tf.image.combined_non_max_suppression` over the class scores, which keeps exactly the
    boxes and scores of the book's class-agnostic NMS (checked in the tests) at ~8x the
    speed of one `non_max_suppression` per image. With several classes the book suppresses
    across classes (each anchor competes with its best class's score and keeps that class
    label); `combined_non_max_suppression` runs per class and returns no anchor indices to
    recover the label, so those go through `multibox_detection`. Returns
    `(batch, max_detections, 6)` rows `(class, confidence, xmin, ymin, xmax, ymax)`, rows
    past the kept boxes with class -1.
    """
    cls_probs = tf.convert_to_tensor(cls_probs, tf.float32)
    if cls_probs.shape[-1] != 2:
        return multibox_detection(cls_probs, offset_preds, anchors, nms_threshold, pos_threshold)[:, :max_detections]
    anchors = tf.reshape(tf.convert_to_tensor(anchors, tf.float32), [-1, 4])
    offset_preds = tf.reshape(tf.convert_to_tensor(offset_preds, tf.float32), [tf.shape(cls_probs)[0], -1, 4])
    boxes = offset_inverse(anchors[None], offset_preds)
    # The kernel reads (y1, x1, y2, x2); IoU is symmetric in x and y, and clip_boxes=False keeps the boxes as is.
    kept = tf.image.combined_non_max_suppression(boxes[:, :, None], cls_probs[..., 1:], max_detections,
                                                 max_detections, nms_threshold, pos_threshold, clip_boxes=False)
    found = tf.range(max_detections)[None] < kept.valid_detections[:, None]
    class_id = tf.where(found, 0.0, -1.0)
    return tf.concat([class_id[..., None], kept.nmsed_scores[..., None], kept.nmsed_boxes], axis=-1)
