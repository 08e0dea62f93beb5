"""Detection metrics: COCO mAP through pycocotools, and the book's class_err / bbox_mae.

`coco_map` hands boxes to pycocotools' own COCOeval (no hand-written COCO evaluation);
`class_errors` and `bbox_abs_errors` are the per-anchor quantities D2L 14.7 averages into
"class err" and "bbox mae" (a Keras `Mean` over them gives exactly the book's ratios).
"""
import contextlib
import io

import numpy as np
import tensorflow as tf


def class_errors(cls_preds, cls_labels):
    """`(batch, anchors)` float 1.0 where the argmax of `cls_preds` `(batch, anchors, classes + 1)`
    differs from `cls_labels` `(batch, anchors)`, else 0.0."""
    predicted = tf.argmax(cls_preds, axis=-1, output_type=tf.int32)
    return tf.cast(tf.not_equal(predicted, tf.cast(cls_labels, tf.int32)), tf.float32)


def bbox_abs_errors(bbox_preds, bbox_labels, bbox_masks):
    """`(batch, anchors * 4)` masked absolute offset errors `|(labels - preds) * masks|`."""
    return tf.abs((bbox_labels - bbox_preds) * bbox_masks)


def _xywh(boxes, sizes):
    """Normalized corner boxes `(n, 4)` -> pixel `(x, y, w, h)` for images of `sizes` `(n, 2)` (w, h)."""
    scale = np.concatenate([sizes, sizes], axis=-1).astype(np.float64)
    px = boxes.astype(np.float64) * scale
    return np.concatenate([px[:, :2], px[:, 2:] - px[:, :2]], axis=-1)


def coco_map(labels, detections, sizes):
    """COCO-style mAP of detections against ground truth, via pycocotools' COCOeval.

    `labels` `(images, objects, 5)` rows `(class, xmin, ymin, xmax, ymax)` normalized to
    the image (class < 0 = padding); `detections` `(images, k, 6)` rows `(class,
    score, xmin, ymin, xmax, ymax)` normalized (class < 0 = no detection; at most 100
    per image count, as in COCO); `sizes` `(images, 2)` pixel (width, height).
    Returns `{"map": AP@[.50:.95], "map50": AP@.50}`, 0.0 when nothing was detected.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    labels, detections = np.asarray(labels), np.asarray(detections)
    sizes = np.asarray(sizes)
    img_ids = np.arange(labels.shape[0])
    gi, gj = np.nonzero(labels[..., 0] >= 0)
    gt_boxes = _xywh(labels[gi, gj, 1:], sizes[gi])
    classes = sorted({int(c) for c in labels[gi, gj, 0]} | {int(c) for c in detections[..., 0].ravel() if c >= 0})
    annotations = [{"id": k + 1, "image_id": int(i), "category_id": int(c) + 1, "bbox": list(map(float, b)),
                    "area": float(b[2] * b[3]), "iscrowd": 0}
                   for k, (i, c, b) in enumerate(zip(gi, labels[gi, gj, 0], gt_boxes))]
    gt = COCO()
    gt.dataset = {"images": [{"id": int(i), "width": int(w), "height": int(h)} for i, (w, h) in zip(img_ids, sizes)],
                  "annotations": annotations, "categories": [{"id": c + 1, "name": str(c)} for c in classes]}
    di, dj = np.nonzero(detections[..., 0] >= 0)
    if len(di) == 0 or not annotations:
        return {"map": 0.0, "map50": 0.0}
    results = np.column_stack([di, _xywh(detections[di, dj, 2:], sizes[di]), detections[di, dj, 1],
                               detections[di, dj, 0] + 1])
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(results)
        evaluator = COCOeval(gt, dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {"map": float(max(evaluator.stats[0], 0.0)), "map50": float(max(evaluator.stats[1], 0.0))}
