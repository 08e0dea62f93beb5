"""Detection metrics: COCO mAP through pycocotools, and the book's class_err / bbox_mae.

`coco_map` hands boxes to pycocotools' own COCOeval (no hand-written COCO evaluation);
`class_errors` and `bbox_abs_errors` are the per-anchor quantities D2L 14.7 averages into
"class err" and "bbox mae" (a Keras `Mean` over them gives exactly the book's ratios).
"""
import contextlib
import functools
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


@functools.lru_cache(maxsize=None)
def _cocoeval():
    """pycocotools' COCOeval, made to also ignore ground truth marked `difficult` (VOC's rule: neither found
    nor missed, and a detection matching it is not false) with the ordinary IoU, where COCO's `iscrowd`
    would use its crowd IoU (intersection over the detection's area)."""
    from pycocotools.cocoeval import COCOeval

    class DifficultAwareCOCOeval(COCOeval):
        def _prepare(self):
            super()._prepare()
            for gts in self._gts.values():
                for g in gts:
                    g["ignore"] = int(g["ignore"] or g.get("difficult", 0))

    return DifficultAwareCOCOeval


def coco_map(labels, detections, sizes, classes=None, ignored=None, ignore_kind="crowd"):
    """COCO-style mAP of detections against ground truth, via pycocotools' COCOeval.

    `labels` `(images, objects, 5)` rows `(class, xmin, ymin, xmax, ymax)` normalized to
    the image (class < 0 = padding); `detections` `(images, k, 6)` rows `(class,
    score, xmin, ymin, xmax, ymax)` normalized (class < 0 = no detection; at most 100
    per image count, as in COCO); `sizes` `(images, 2)` pixel (width, height).
    `ignored`: boxes in the form of `labels` that count neither as found nor missed, COCO's
    `iscrowd` regions (`ignore_kind="crowd"`, matched by COCO's crowd IoU) or VOC's `difficult`
    objects (`"difficult"`, matched by IoU). Returns `{"map": AP@[.50:.95], "map50": AP@.50}`,
    0.0 when nothing was detected; with `classes` (names in index order) also `"class_ap50"` and
    `"class_ap"`: name -> AP of each class with ground truth.
    """
    from pycocotools.coco import COCO

    labels, detections = np.asarray(labels), np.asarray(detections)
    sizes = np.asarray(sizes)
    img_ids = np.arange(labels.shape[0])
    gi, gj = np.nonzero(labels[..., 0] >= 0)
    rows = [(gi, labels[gi, gj], 0)]
    if ignored is not None and np.size(ignored):
        ii, ij = np.nonzero(np.asarray(ignored)[..., 0] >= 0)
        rows.append((ii, np.asarray(ignored)[ii, ij], 1))
    flag = "iscrowd" if ignore_kind == "crowd" else "difficult"
    annotations = []
    for index, found, marked in rows:
        boxes = _xywh(found[:, 1:], sizes[index])
        annotations += [{"image_id": int(i), "category_id": int(c) + 1, "bbox": list(map(float, b)),
                         "area": float(b[2] * b[3]), "iscrowd": 0, **({flag: 1} if marked else {})}
                        for i, c, b in zip(index, found[:, 0], boxes)]
    for k, a in enumerate(annotations):
        a["id"] = k + 1
    classes_seen = sorted({int(c) for c in labels[gi, gj, 0]} | {a["category_id"] - 1 for a in annotations}
                          | {int(c) for c in detections[..., 0].ravel() if c >= 0})
    gt = COCO()
    gt.dataset = {"images": [{"id": int(i), "width": int(w), "height": int(h)} for i, (w, h) in zip(img_ids, sizes)],
                  "annotations": annotations, "categories": [{"id": c + 1, "name": str(c)} for c in classes_seen]}
    di, dj = np.nonzero(detections[..., 0] >= 0)
    with_gt = sorted({int(c) for c in labels[gi, gj, 0]})
    if len(di) == 0 or len(gi) == 0:
        nothing = {classes[c]: 0.0 for c in with_gt} if classes is not None else None
        return {"map": 0.0, "map50": 0.0, **({"class_ap50": nothing, "class_ap": nothing} if nothing else {})}
    results = np.column_stack([di, _xywh(detections[di, dj, 2:], sizes[di]), detections[di, dj, 1],
                               detections[di, dj, 0] + 1])
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(results)
        evaluator = _cocoeval()(gt, dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    out = {"map": float(max(evaluator.stats[0], 0.0)), "map50": float(max(evaluator.stats[1], 0.0))}
    if classes is not None:
        # precision (iou thresholds, recall points, categories, area ranges, max dets); -1 = no ground truth
        precision = evaluator.eval["precision"][:, :, :, 0, -1]
        k = {c: classes_seen.index(c) for c in with_gt}
        out["class_ap50"] = {classes[c]: float(np.mean(np.maximum(precision[0, :, k[c]], 0))) for c in with_gt}
        out["class_ap"] = {classes[c]: float(np.mean(np.maximum(precision[:, :, k[c]], 0))) for c in with_gt}
    return out
