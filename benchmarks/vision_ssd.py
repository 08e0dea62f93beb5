"""TinySSD speed: ours (Keras/TF) against the book's own PyTorch TinySSD, back to back.

`python -m benchmarks.vision_ssd [--steps N] [--quick]` prints one JSON line per
measurement: box_iou (10,000 x 1,000 boxes) and nms (10,000 boxes), ours and the book's
Python-loop NMS; TinySSD training examples/s (256 x 256, batch 32, the book's SGD
step with anchor assignment) and prediction images/s (softmax, offset decoding, NMS),
ours and the book's PyTorch code (written out below from D2L 14.4 and 14.7, CPU),
each with the ratio ours / book. Everything runs in one process on in-memory images, so
the ratios compare the same machine under the same load. The book's NMS cost depends on
the boxes predicted, so both predict pipelines post-process the outputs of one model: pass
a trained one with `--model runs/ssd/<run>/model.keras --image-dir <bananas_val/images>`.
"""
import argparse
from pathlib import Path

import common  # noqa: F401  (quiet TensorFlow import)
import keras
import numpy as np
import tensorflow as tf
import torch
from torch import nn
from torch.nn import functional as F

from benchmarks.harness import measure, report
from vision import boxes as B
from vision import ssd

# --- the book's PyTorch code (D2L 14.4 "Anchor Boxes", 14.7 "Single Shot Multibox Detection") ---


def t_box_corner_to_center(boxes):
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    return torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), axis=-1)


def t_box_center_to_corner(boxes):
    cx, cy, w, h = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    return torch.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), axis=-1)


def t_multibox_prior(data, sizes, ratios):
    in_height, in_width = data.shape[-2:]
    device, num_sizes, num_ratios = data.device, len(sizes), len(ratios)
    boxes_per_pixel = num_sizes + num_ratios - 1
    size_tensor = torch.tensor(sizes, device=device)
    ratio_tensor = torch.tensor(ratios, device=device)
    center_h = (torch.arange(in_height, device=device) + 0.5) / in_height
    center_w = (torch.arange(in_width, device=device) + 0.5) / in_width
    shift_y, shift_x = torch.meshgrid(center_h, center_w, indexing="ij")
    shift_y, shift_x = shift_y.reshape(-1), shift_x.reshape(-1)
    w = torch.cat((size_tensor * torch.sqrt(ratio_tensor[0]), sizes[0] * torch.sqrt(ratio_tensor[1:]))) \
        * in_height / in_width
    h = torch.cat((size_tensor / torch.sqrt(ratio_tensor[0]), sizes[0] / torch.sqrt(ratio_tensor[1:])))
    anchor_manipulations = torch.stack((-w, -h, w, h)).T.repeat(in_height * in_width, 1) / 2
    out_grid = torch.stack([shift_x, shift_y, shift_x, shift_y], dim=1).repeat_interleave(boxes_per_pixel, dim=0)
    return (out_grid + anchor_manipulations).unsqueeze(0)


def t_box_iou(boxes1, boxes2):
    def box_area(boxes):
        return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])

    areas1, areas2 = box_area(boxes1), box_area(boxes2)
    inter_upperlefts = torch.max(boxes1[:, None, :2], boxes2[:, :2])
    inter_lowerrights = torch.min(boxes1[:, None, 2:], boxes2[:, 2:])
    inters = (inter_lowerrights - inter_upperlefts).clamp(min=0)
    inter_areas = inters[:, :, 0] * inters[:, :, 1]
    return inter_areas / (areas1[:, None] + areas2 - inter_areas)


def t_assign_anchor_to_bbox(ground_truth, anchors, device, iou_threshold=0.5):
    num_anchors, num_gt_boxes = anchors.shape[0], ground_truth.shape[0]
    jaccard = t_box_iou(anchors, ground_truth)
    anchors_bbox_map = torch.full((num_anchors,), -1, dtype=torch.long, device=device)
    max_ious, indices = torch.max(jaccard, dim=1)
    anc_i = torch.nonzero(max_ious >= iou_threshold).reshape(-1)
    box_j = indices[max_ious >= iou_threshold]
    anchors_bbox_map[anc_i] = box_j
    col_discard = torch.full((num_anchors,), -1)
    row_discard = torch.full((num_gt_boxes,), -1)
    for _ in range(num_gt_boxes):
        max_idx = torch.argmax(jaccard)
        box_idx = (max_idx % num_gt_boxes).long()
        anc_idx = (max_idx / num_gt_boxes).long()
        anchors_bbox_map[anc_idx] = box_idx
        jaccard[:, box_idx] = col_discard
        jaccard[anc_idx, :] = row_discard
    return anchors_bbox_map


def t_offset_boxes(anchors, assigned_bb, eps=1e-6):
    c_anc = t_box_corner_to_center(anchors)
    c_assigned_bb = t_box_corner_to_center(assigned_bb)
    offset_xy = 10 * (c_assigned_bb[:, :2] - c_anc[:, :2]) / c_anc[:, 2:]
    offset_wh = 5 * torch.log(eps + c_assigned_bb[:, 2:] / c_anc[:, 2:])
    return torch.cat([offset_xy, offset_wh], axis=1)


def t_multibox_target(anchors, labels):
    batch_size, anchors = labels.shape[0], anchors.squeeze(0)
    batch_offset, batch_mask, batch_class_labels = [], [], []
    device, num_anchors = anchors.device, anchors.shape[0]
    for i in range(batch_size):
        label = labels[i, :, :]
        anchors_bbox_map = t_assign_anchor_to_bbox(label[:, 1:], anchors, device)
        bbox_mask = ((anchors_bbox_map >= 0).float().unsqueeze(-1)).repeat(1, 4)
        class_labels = torch.zeros(num_anchors, dtype=torch.long, device=device)
        assigned_bb = torch.zeros((num_anchors, 4), dtype=torch.float32, device=device)
        indices_true = torch.nonzero(anchors_bbox_map >= 0)
        bb_idx = anchors_bbox_map[indices_true]
        class_labels[indices_true] = label[bb_idx, 0].long() + 1
        assigned_bb[indices_true] = label[bb_idx, 1:]
        offset = t_offset_boxes(anchors, assigned_bb) * bbox_mask
        batch_offset.append(offset.reshape(-1))
        batch_mask.append(bbox_mask.reshape(-1))
        batch_class_labels.append(class_labels)
    return torch.stack(batch_offset), torch.stack(batch_mask), torch.stack(batch_class_labels)


def t_offset_inverse(anchors, offset_preds):
    anc = t_box_corner_to_center(anchors)
    pred_bbox_xy = (offset_preds[:, :2] * anc[:, 2:] / 10) + anc[:, :2]
    pred_bbox_wh = torch.exp(offset_preds[:, 2:] / 5) * anc[:, 2:]
    return t_box_center_to_corner(torch.cat((pred_bbox_xy, pred_bbox_wh), axis=1))


def t_nms(boxes, scores, iou_threshold):
    order = torch.argsort(scores, dim=-1, descending=True)
    keep = []
    while order.numel() > 0:
        i = order[0]
        keep.append(i)
        if order.numel() == 1:
            break
        iou = t_box_iou(boxes[i, :].reshape(-1, 4), boxes[order[1:], :].reshape(-1, 4)).reshape(-1)
        inds = torch.nonzero(iou <= iou_threshold).reshape(-1)
        order = order[inds + 1]
    return torch.tensor(keep, device=boxes.device)


def t_multibox_detection(cls_probs, offset_preds, anchors, nms_threshold=0.5, pos_threshold=0.009999999):
    device, batch_size = cls_probs.device, cls_probs.shape[0]
    anchors = anchors.squeeze(0)
    num_anchors = cls_probs.shape[2]
    out = []
    for i in range(batch_size):
        cls_prob, offset_pred = cls_probs[i], offset_preds[i].reshape(-1, 4)
        conf, class_id = torch.max(cls_prob[1:], 0)
        predicted_bb = t_offset_inverse(anchors, offset_pred)
        keep = t_nms(predicted_bb, conf, nms_threshold)
        all_idx = torch.arange(num_anchors, dtype=torch.long, device=device)
        combined = torch.cat((keep, all_idx))
        uniques, counts = combined.unique(return_counts=True)
        non_keep = uniques[counts == 1]
        all_id_sorted = torch.cat((keep, non_keep))
        class_id[non_keep] = -1
        class_id = class_id[all_id_sorted]
        conf, predicted_bb = conf[all_id_sorted], predicted_bb[all_id_sorted]
        below_min_idx = conf < pos_threshold
        class_id[below_min_idx] = -1
        conf[below_min_idx] = 1 - conf[below_min_idx]
        out.append(torch.cat((class_id.unsqueeze(1), conf.unsqueeze(1), predicted_bb), dim=1))
    return torch.stack(out)


def down_sample_blk(in_channels, out_channels):
    blk = []
    for _ in range(2):
        blk += [nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), nn.BatchNorm2d(out_channels),
                nn.ReLU()]
        in_channels = out_channels
    blk.append(nn.MaxPool2d(2))
    return nn.Sequential(*blk)


def get_blk(i):
    if i == 0:
        return nn.Sequential(down_sample_blk(3, 16), down_sample_blk(16, 32), down_sample_blk(32, 64))
    if i == 1:
        return down_sample_blk(64, 128)
    if i == 4:
        return nn.AdaptiveMaxPool2d((1, 1))
    return down_sample_blk(128, 128)


class BookTinySSD(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.num_classes = num_classes
        for i, c in enumerate([64, 128, 128, 128, 128]):
            setattr(self, f"blk_{i}", get_blk(i))
            setattr(self, f"cls_{i}", nn.Conv2d(c, 4 * (num_classes + 1), kernel_size=3, padding=1))
            setattr(self, f"bbox_{i}", nn.Conv2d(c, 4 * 4, kernel_size=3, padding=1))

    def forward(self, X):
        anchors, cls_preds, bbox_preds = [], [], []
        for i in range(5):
            X = getattr(self, f"blk_{i}")(X)
            anchors.append(t_multibox_prior(X, sizes=ssd.SIZES[i], ratios=ssd.RATIOS[i]))
            cls_preds.append(torch.flatten(getattr(self, f"cls_{i}")(X).permute(0, 2, 3, 1), start_dim=1))
            bbox_preds.append(torch.flatten(getattr(self, f"bbox_{i}")(X).permute(0, 2, 3, 1), start_dim=1))
        cls_preds = torch.cat(cls_preds, dim=1)
        return (torch.cat(anchors, dim=1), cls_preds.reshape(cls_preds.shape[0], -1, self.num_classes + 1),
                torch.cat(bbox_preds, dim=1))


# --- measurements -----------------------------------------------------------------------------
def random_boxes(rng, n):
    lo = rng.uniform(0, 0.9, (n, 2))
    return np.concatenate([lo, lo + rng.uniform(0.01, 0.1, (n, 2))], axis=1).astype(np.float32)


def bench_box_ops(rng):
    boxes, gts = random_boxes(rng, 10_000), random_boxes(rng, 1_000)
    scores = rng.uniform(size=10_000).astype(np.float32)
    iou_fn = tf.function(B.box_iou)
    ours = measure("vision.boxes.box_iou 10000x1000", lambda: iou_fn(boxes, gts).numpy(), 10_000_000, "pairs")
    tb, tg = torch.from_numpy(boxes), torch.from_numpy(gts)
    book = measure("book box_iou (torch) 10000x1000", lambda: t_box_iou(tb, tg), 10_000_000, "pairs")
    report("box_iou ratio ours/book", "x", ours["rate"] / book["rate"], 1.0)
    nms_fn = tf.function(lambda b, s: B.nms(b, s, 0.5))
    measure("vision.boxes.nms 10000 boxes", lambda: nms_fn(boxes, scores).numpy(), 10_000, "boxes",
            kept=int(tf.size(nms_fn(boxes, scores))))
    # The book's loop takes minutes on 10,000 boxes (one Python iteration per kept box): compare on 2,000.
    n = 2_000
    ours = measure(f"vision.boxes.nms {n} boxes", lambda: nms_fn(boxes[:n], scores[:n]).numpy(), n, "boxes",
                   kept=int(tf.size(nms_fn(boxes[:n], scores[:n]))))
    tb, ts = torch.from_numpy(boxes[:n]), torch.from_numpy(scores[:n])
    kept = []
    book = measure(f"book nms (torch, Python loop) {n} boxes", lambda: kept.append(len(t_nms(tb, ts, 0.5))), n,
                   "boxes", repeat=1, warmup=0)
    report("nms ratio ours/book", "x", ours["rate"] / book["rate"], 1.0, book_kept=kept[0])


def batch(rng, size=256, n=32):
    images = rng.integers(0, 256, (n, size, size, 3)).astype(np.uint8)
    xy = rng.uniform(0.05, 0.6, (n, 1, 2))
    labels = np.concatenate([np.zeros((n, 1, 1)), xy, xy + rng.uniform(0.1, 0.35, (n, 1, 2))], -1)
    return images, labels.astype(np.float32)


def bench_training(rng, steps):
    images, labels = batch(rng)
    model = ssd.build(ssd.Config())
    data = tf.data.Dataset.from_tensors((images, labels)).repeat()
    model.fit(data, steps_per_epoch=2, verbose=0)  # trace and warm up
    ours = measure("TinySSD train (ours, keras/tf)", lambda: model.fit(data, steps_per_epoch=steps, verbose=0),
                   32 * steps, "examples", repeat=2, warmup=0, batch=32, image=256)

    net = BookTinySSD(num_classes=1)
    trainer = torch.optim.SGD(net.parameters(), lr=0.2, weight_decay=5e-4)
    cls_loss, bbox_loss = nn.CrossEntropyLoss(reduction="none"), nn.L1Loss(reduction="none")
    X = torch.from_numpy(images).permute(0, 3, 1, 2).float()  # the book feeds raw 0..255 floats
    Y = torch.from_numpy(labels)

    def book_steps():
        net.train()
        for _ in range(steps):
            trainer.zero_grad()
            anchors, cls_preds, bbox_preds = net(X)
            bbox_labels, bbox_masks, cls_labels = t_multibox_target(anchors, Y)
            cls = cls_loss(cls_preds.reshape(-1, 2), cls_labels.reshape(-1)).reshape(32, -1).mean(dim=1)
            bbox = bbox_loss(bbox_preds * bbox_masks, bbox_labels * bbox_masks).mean(dim=1)
            (cls + bbox).mean().backward()
            trainer.step()

    book = measure("TinySSD train (book, pytorch)", book_steps, 32 * steps, "examples", repeat=1, warmup=1,
                   batch=32, image=256, torch_threads=torch.get_num_threads())
    report("train ratio ours/book", "x", ours["rate"] / book["rate"], 1.0)
    return model, net


def bench_predict(rng, model, net, n, image_dir=None):
    """Forward pass + detection. The book's NMS time depends on the predicted boxes, so both
    sides post-process the same outputs: those of our `model` (the book's network only
    contributes its forward-pass time, which does not depend on its weights)."""
    if image_dir:
        _, images = ssd.read_images(sorted(Path(image_dir).glob("*.png"))[:n], model.image_size)
    else:
        images, _ = batch(rng, n=n)
    detector = ssd.make_detector(model)
    detector(images[:1])
    ours = measure("TinySSD predict (ours, batch)", lambda: detector(images).numpy(), n, "images", repeat=2)
    ours1 = measure("TinySSD predict (ours, one image at a time)",
                    lambda: [detector(images[i:i + 1]).numpy() for i in range(n)], n, "images", repeat=1)
    X = torch.from_numpy(images).permute(0, 3, 1, 2).float()

    cls_preds, bbox_preds = (torch.from_numpy(t.numpy()) for t in model(images))

    def book_predict():  # the book's predict(): one image at a time
        net.eval()
        with torch.no_grad():
            for i in range(n):
                anchors, _, _ = net(X[i:i + 1])
                cls_probs = F.softmax(cls_preds[i:i + 1], dim=2).permute(0, 2, 1)
                output = t_multibox_detection(cls_probs, bbox_preds[i:i + 1], anchors)
                [j for j, row in enumerate(output[0]) if row[0] != -1]

    book = measure("TinySSD predict (book, pytorch)", book_predict, n, "images", repeat=1)
    report("predict ratio ours/book (batched)", "x", ours["rate"] / book["rate"], 1.0)
    report("predict ratio ours/book (one at a time)", "x", ours1["rate"] / book["rate"], 1.0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2, help="training steps per timed repeat")
    parser.add_argument("--images", type=int, default=16, help="images per predict measurement")
    parser.add_argument("--only", choices=["boxes", "train", "predict"], help="run one group")
    parser.add_argument("--model", type=Path, help="a trained model.keras (256 x 256) whose outputs both "
                        "predict pipelines post-process (default: the model after the training benchmark)")
    parser.add_argument("--image-dir", type=Path, help="PNG images to predict on (default: random images)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    if args.only in (None, "boxes"):
        bench_box_ops(rng)
    if args.only in (None, "train", "predict"):
        model, net = bench_training(rng, args.steps) if args.only != "predict" else (
            ssd.build(ssd.Config()), BookTinySSD(num_classes=1))
        if args.model:
            model = keras.saving.load_model(args.model)
        if args.only != "train":
            bench_predict(rng, model, net, args.images, args.image_dir)


if __name__ == "__main__":
    main()
