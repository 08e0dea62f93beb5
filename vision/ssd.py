"""TinySSD single-shot multibox detection (D2L 14.7): `python -m vision.ssd train|evaluate|predict`.

The book's model: a base network (three down-sampling blocks, 16/32/64 channels), three
more down-sampling blocks (128 channels) and a global max pool give five feature maps;
each gets n + m - 1 = 4 anchors per pixel (sizes `SIZES`, ratios 1, 2, 0.5) and 3x3
convolutional class and offset predictors. Training assigns anchors to ground truth
with `vision.boxes.multibox_target` inside the train step (batched, in the graph).

The default recipe keeps the book's model, anchors, offsets and 20 epochs but trains it
the way detectors are trained now (`vision.ssd_loss`): focal class loss over all anchors
with class biases starting at background probability 0.99, the masked L1 (or smooth-L1)
offset loss, both divided by the number of positive anchors; Adam at 3e-3 with cosine
decay (`common.training.CosineSchedule`: a run resumed with another `--epochs` continues
from its current learning rate over the remaining steps); batch 16. `--preset book`
restores the book's recipe (mean cross-entropy over all anchors, SGD lr 0.2, weight decay
5e-4, batch 32), which reaches a much lower mAP in 20 epochs (see docs/vision.md). Batch
normalization is synchronized across replicas, so N replicas train exactly like one with
the same global batch. `--ignore-iou 0.4` leaves background anchors that overlap an object
almost enough to be positive out of the class loss (RetinaNet's band); `--pos-iou` sets the IoU
from which anchors are positives (the book's 0.5). `--demo` uses positives from 0.4 and ignores 0.3-0.4.

Data: `--data-dir` with the banana-detection layout, else `--source generated` (the
default: the offline generated banana set, written once into the cache; it depends on
`--data-seed` only, so `--seed` varies training, not the data) or `--source download`
(the book's archive, SHA-1 checked).
"""
import functools
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw, ImageFont

from common import cli, training
from common.data import epoch_seed
from common.distribute import per_replica_batch_size, scale_loss, use_xla
from common.errors import DatasetError, UsageError
from common.files import atomic_path, writable_dir
from vision import banana
from vision.boxes import multibox_prior, multibox_target, top_detections
from vision.detection_eval import bbox_abs_errors, class_errors, coco_map
from vision.ssd_loss import CLASS_LOSSES, ignore_band, prior_bias, ssd_loss

SIZES = ((0.2, 0.272), (0.37, 0.447), (0.54, 0.619), (0.71, 0.79), (0.88, 0.961))
RATIOS = ((1, 2, 0.5),) * 5
MAX_DETECTIONS = 100
# Focal loss scores a found banana 0.3-0.6 (the default run: top box median 0.50, 5th percentile
# 0.33; the second box rarely above 0.35), so boxes are drawn from 0.4 rather than 0.5. The demo's
# recipe scores higher (top box median 0.69) and puts no box >= 0.4 on the background of 256 images.
DRAW_THRESHOLD = 0.4


@dataclass
class Config(cli.TrainConfig):
    epochs: int = 20
    batch_size: int = field(default=16, metadata={"help": "global batch (the book: 32)"})
    lr: float = field(default=3e-3, metadata=cli.positive("peak learning rate"))
    optimizer: str = field(default="adam", metadata={"choices": ["adam", "sgd"], "help": "the book: sgd"})
    lr_schedule: str = field(default="cosine", metadata={
        "choices": ["cosine", "constant"],
        "help": "cosine decay to 0 over the run (resumed with another --epochs, it continues from the current "
                "rate over the remaining steps), or constant (the book)"})
    weight_decay: float = field(default=5e-4, metadata=cli.bounds("[0, inf)",
                                                                  "decoupled weight decay (the book's 5e-4)"))
    bbox_loss: str = field(default="l1", metadata={"choices": ["l1", "smooth_l1"], "help": "offset loss"})
    class_loss: str = field(default="focal", metadata={
        "choices": list(CLASS_LOSSES),
        "help": "focal: RetinaNet's focal loss over all anchors; hard_negative: positives + NEG_RATIO x as many "
                "hardest background anchors (the SSD paper); both / positives. mean: the book's mean over anchors"})
    neg_ratio: float = field(default=3.0, metadata=cli.positive("hard negatives per positive anchor (hard_negative)"))
    ignore_iou: float = field(default=0.0, metadata=cli.bounds("[0, 1)", (
        "background anchors whose IoU with an object is at least this are left out of the class loss "
        "(RetinaNet's 0.4; must be below --pos-iou); 0: none (the book)")))
    pos_iou: float = field(default=0.5, metadata=cli.bounds("(0, 1]", (
        "anchors whose IoU with an object is at least this are assigned to it (positives; each object's "
        "best anchor always is): the book's 0.5")))
    image_size: int = field(default=256, metadata={"help": "square input side in pixels, a multiple of 64"})
    num_classes: int = field(default=1, metadata=cli.at_least(1, "object classes (the banana set has 1)"))
    flip: bool = field(default=True, metadata={"help": "random horizontal flips (boxes flipped too)"})
    source: str = field(default="generated", metadata={
        "choices": ["generated", "download"],
        "help": "without --data-dir: the offline generated banana set, or the book's archive"})
    train_images: int = field(default=1000, metadata=cli.at_least(1, "generated training images"))
    val_images: int = field(default=100, metadata=cli.at_least(1, "generated validation images"))
    max_objects: int = field(default=1, metadata=cli.at_least(1, "generated bananas per image (1..N)"))
    generated_size: int = field(default=256, metadata=cli.at_least(32, "side of the generated images in pixels "
                                                                        "(the book's files: 256)"))
    data_seed: int = field(default=0, metadata=cli.bounds(
        f"[0, {2**32 - 1}]", "seed of the generated banana set (--seed changes training only, not the data)"))
    nms_threshold: float = field(default=0.3, metadata=cli.bounds(
        "(0, 1]", "class-agnostic NMS IoU threshold (the book: 0.5; 0.3 also drops boxes on part of an object)"))
    eval_every: int = field(default=5, metadata=cli.at_least(1, "validation mAP every N epochs (and after the last)"))

    def validate(self):
        super().validate()
        if self.image_size < 64 or self.image_size % 64:
            raise UsageError(f"--image-size must be a positive multiple of 64, got {self.image_size}")
        if self.ignore_iou >= self.pos_iou:
            raise UsageError(f"--ignore-iou {self.ignore_iou} must be below --pos-iou {self.pos_iou} (the ignored "
                             "band lies under the positives)")


# The demo (about 1-2 minutes on a 2-core CPU): 64 x 64 inputs (1/16 of the default compute) from
# 1,984 generated images written at 128 x 128 (a quarter of the generator's cost at 256), 8 epochs
# of batch 32 (a multiple: no retrace for a last short batch) at Adam 3e-3; hard-negative mining,
# which scores found bananas higher than the focal loss (top box median 0.69 against 0.39); anchors
# with IoU >= 0.4 to a banana are positives (the book: 0.5; a banana of 0.15 of a 64-pixel side has
# few anchors at 0.5) and background anchors at IoU 0.3-0.4 are left out of the class loss: val map50
# 0.88-0.91 over three seeds, against 0.85 with positives at 0.5; mAP on 256 validation images (64
# give +-0.04).
DEMO = {"epochs": 8, "image_size": 64, "generated_size": 128, "train_images": 1984, "val_images": 256,
        "eval_every": 4, "batch_size": 32, "lr": 3e-3, "class_loss": "hard_negative", "pos_iou": 0.4,
        "ignore_iou": 0.3}
# The book's training recipe: SGD at a constant lr 0.2, mean cross-entropy over all anchors.
BOOK = {"optimizer": "sgd", "lr": 0.2, "lr_schedule": "constant", "class_loss": "mean", "batch_size": 32,
        "ignore_iou": 0.0, "pos_iou": 0.5}


# --- model -----------------------------------------------------------------------------
def down_sample_blk(filters, name):
    """Two (3x3 conv, batch norm, ReLU) then 2x2 max pool: halves height and width."""
    layers = []
    for i in range(2):
        layers += [keras.layers.Conv2D(filters, 3, padding="same", name=f"conv{i}"),
                   keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, synchronized=True, name=f"bn{i}"),
                   keras.layers.ReLU()]
    return keras.Sequential(layers + [keras.layers.MaxPooling2D(2)], name=name)


def feature_map_sizes(image_size):
    """Side lengths of the five feature maps TinySSD predicts from."""
    return [image_size // 8, image_size // 16, image_size // 32, image_size // 64, 1]


def tinyssd_anchors(image_size):
    """All anchors of TinySSD for a square input, `(anchors, 4)` in image units."""
    return tf.concat([multibox_prior(s, s, size, ratio)
                      for s, size, ratio in zip(feature_map_sizes(image_size), SIZES, RATIOS)], axis=0)


@keras.saving.register_keras_serializable(package="dlsuite")
class TinySSD(keras.Model):
    """The book's TinySSD. Input `(batch, size, size, 3)` uint8 (or float 0..255);
    output `(cls_preds (batch, anchors, classes + 1) logits, bbox_preds (batch, anchors * 4))`."""

    def __init__(self, num_classes=1, image_size=256, bbox_loss="l1", class_loss="focal", neg_ratio=3.0,
                 ignore_iou=0.0, pos_iou=0.5, **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.image_size, self.bbox_loss = num_classes, image_size, bbox_loss
        self.class_loss, self.neg_ratio, self.ignore_iou, self.pos_iou = class_loss, neg_ratio, ignore_iou, pos_iou
        self.num_anchors = len(SIZES[0]) + len(RATIOS[0]) - 1
        # One attribute per layer, as the book does: TensorFlow checkpoints track attributes,
        # not layers kept in Python lists.
        self.blk_0 = keras.Sequential([down_sample_blk(f, f"base{i}") for i, f in enumerate((16, 32, 64))],
                                      name="blk_0")
        self.blk_1, self.blk_2, self.blk_3 = (down_sample_blk(128, f"blk_{i}") for i in (1, 2, 3))
        self.blk_4 = keras.layers.GlobalMaxPooling2D(keepdims=True, name="blk_4")
        for i in range(5):
            setattr(self, f"cls_{i}", keras.layers.Conv2D(self.num_anchors * (num_classes + 1), 3, padding="same",
                                                          name=f"cls_{i}"))
            setattr(self, f"bbox_{i}", keras.layers.Conv2D(self.num_anchors * 4, 3, padding="same", name=f"bbox_{i}"))
        self.anchors = tinyssd_anchors(image_size)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.class_err = keras.metrics.Mean(name="class_err")
        self.bbox_mae = keras.metrics.Mean(name="bbox_mae")

    def call(self, images, training=False):
        x = tf.cast(images, self.compute_dtype) / 255.0
        batch = tf.shape(x)[0]
        cls_preds, bbox_preds = [], []
        for i in range(5):
            x = getattr(self, f"blk_{i}")(x, training=training)
            cls_preds.append(tf.reshape(getattr(self, f"cls_{i}")(x), [batch, -1, self.num_classes + 1]))
            bbox_preds.append(tf.reshape(getattr(self, f"bbox_{i}")(x), [batch, -1]))
        return tf.concat(cls_preds, axis=1), tf.concat(bbox_preds, axis=1)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "image_size": self.image_size,
                "bbox_loss": self.bbox_loss, "class_loss": self.class_loss, "neg_ratio": self.neg_ratio,
                "ignore_iou": self.ignore_iou, "pos_iou": self.pos_iou}

    @property
    def metrics(self):
        return [self.loss_tracker, self.class_err, self.bbox_mae]

    def _ssd_loss(self, images, labels, training):
        cls_preds, bbox_preds = self(images, training=training)
        cls_preds, bbox_preds = tf.cast(cls_preds, tf.float32), tf.cast(bbox_preds, tf.float32)
        bbox_labels, bbox_masks, cls_labels = multibox_target(self.anchors, labels, self.pos_iou)
        ignore = ignore_band(self.anchors, labels, cls_labels, self.ignore_iou) if self.ignore_iou else None
        loss = tf.reduce_mean(ssd_loss(cls_preds, bbox_preds, cls_labels, bbox_labels, bbox_masks,
                                       class_loss=self.class_loss, bbox_loss=self.bbox_loss,
                                       neg_ratio=self.neg_ratio, ignore=ignore))
        self.class_err.update_state(class_errors(cls_preds, cls_labels))
        self.bbox_mae.update_state(bbox_abs_errors(bbox_preds, bbox_labels, bbox_masks))
        return loss

    def train_step(self, data):
        images, labels = data
        with tf.GradientTape() as tape:
            loss = self._ssd_loss(images, labels, training=True)
            scaled = scale_loss(loss)
        grads = tape.gradient(scaled, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        self.loss_tracker.update_state(loss, sample_weight=tf.shape(images)[0])
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        images, labels = data
        loss = self._ssd_loss(images, labels, training=False)
        self.loss_tracker.update_state(loss, sample_weight=tf.shape(images)[0])
        return {m.name: m.result() for m in self.metrics}


def build(config, total_steps=None):
    """A compiled TinySSD for `config` (call under the strategy scope); `total_steps` is the
    length of the run, which the cosine schedule (`training.CosineSchedule`) decays over."""
    model = TinySSD(config.num_classes, config.image_size, config.bbox_loss, config.class_loss, config.neg_ratio,
                    config.ignore_iou, config.pos_iou, name="tinyssd")
    model(tf.zeros([1, config.image_size, config.image_size, 3], tf.uint8))
    if config.class_loss == "focal":  # start every anchor at background probability 0.99 (RetinaNet)
        for i in range(5):
            head = getattr(model, f"cls_{i}")
            head.bias.assign(prior_bias(model.num_anchors, config.num_classes))
    lr = config.lr
    if config.lr_schedule == "cosine" and total_steps:
        lr = training.CosineSchedule(config.lr, total_steps)
    kind = keras.optimizers.Adam if config.optimizer == "adam" else keras.optimizers.SGD
    model.compile(optimizer=kind(lr, weight_decay=config.weight_decay or None),
                  jit_compile=use_xla())
    # Optimizer slots made now, not inside the first train step: a step that creates variables
    # is traced twice, which cost the demo several seconds.
    model.optimizer.build(model.trainable_variables)
    return model


def make_detector(model, nms_threshold=0.5, max_detections=MAX_DETECTIONS):
    """A `tf.function` images -> `(batch, max_detections, 6)` rows `(class, score, box)`.

    Softmax, offset decoding and the book's class-agnostic NMS (`top_detections`) in one
    graph; rows past the kept detections have class -1.
    """
    anchors = model.anchors

    @tf.function(reduce_retracing=True)
    def detect(images):
        cls_preds, bbox_preds = model(images, training=False)
        probs = tf.nn.softmax(tf.cast(cls_preds, tf.float32), axis=-1)
        return top_detections(probs, tf.cast(bbox_preds, tf.float32), anchors, nms_threshold, max_detections)

    return detect


def detect_dataset(detector, dataset):
    """Run `detector` over a dataset of `(images, labels)` batches; return numpy (detections, labels)."""
    dets, labels = [], []
    for images, label in dataset:
        dets.append(detector(images).numpy())
        labels.append(label.numpy())
    width = max(lab.shape[1] for lab in labels)
    labels = [np.pad(lab, ((0, 0), (0, width - lab.shape[1]), (0, 0)), constant_values=-1) for lab in labels]
    return np.concatenate(dets), np.concatenate(labels)


# --- data ------------------------------------------------------------------------------
def load_split(ctx, config, split):
    """`(paths, labels, sizes)` of a split from --data-dir, the generated set or the download."""
    root = banana.banana_root(ctx.data_dir, config.source, config.train_images, config.val_images,
                              config.data_seed, config.max_objects, config.generated_size)
    paths, labels, sizes = banana.read_bananas(root, split)
    top = int(labels[..., 0].max())
    if top >= config.num_classes:
        raise DatasetError(f"{root / banana.SPLITS[split] / 'label.csv'} has class {top}; "
                           f"pass --num-classes {top + 1} or more")
    return paths, labels, sizes


@functools.lru_cache(maxsize=None)
def _font(size):
    """PIL's bundled font at `size` pixels, loaded once per size."""
    return ImageFont.load_default(size=size)


def draw_detections(image, detections, threshold, best=False):
    """PIL image with the detections `(k, 6)` (normalized boxes, by decreasing score) scoring
    >= threshold drawn in white with `class:score`; with `best`, an image with none of those
    gets its best detection drawn in grey instead."""
    image = Image.fromarray(np.asarray(image, np.uint8)).convert("RGB")
    draw = ImageDraw.Draw(image)
    w, h = image.size
    found = detections[detections[:, 0] >= 0]
    keep = found[found[:, 1] >= threshold]
    colour = (255, 255, 255)
    if best and len(keep) == 0 and len(found):
        keep, colour = found[:1], (150, 150, 150)
    font = _font(max(10, w // 20))
    for cls, score, *box in keep:
        xy = [box[0] * w, box[1] * h, box[2] * w, box[3] * h]
        draw.rectangle(xy, outline=colour, width=max(2, w // 128))
        draw.text((xy[0] + 3, xy[1] + 2), f"{int(cls)}:{score:.2f}", fill=colour, font=font)
    return image


def read_images(paths, image_size):
    """The images at `paths` as RGB PIL images, plus their `(n, size, size, 3)` uint8 resized batch."""
    originals = []
    for path in paths:
        try:
            with Image.open(path) as im:
                originals.append(im.convert("RGB"))
        except (OSError, ValueError) as e:
            raise DatasetError(f"cannot read image {path} ({e.__class__.__name__}); pass PNG or JPEG files") from None
    batch = np.stack([np.asarray(im.resize((image_size, image_size), Image.BILINEAR)) for im in originals])
    return originals, batch


def write_detection_grid(detector, paths, image_size, path, threshold=DRAW_THRESHOLD):
    """A PNG grid of `paths` (drawn at their own resolution) with the boxes scoring >= threshold
    (white), or else each image's best box (grey)."""
    originals, batch = read_images(paths, image_size)
    dets = detector(tf.constant(batch)).numpy()
    images = [np.asarray(draw_detections(np.asarray(im), d, threshold, best=True).resize((256, 256)))
              for im, d in zip(originals, dets)]
    images += [np.zeros_like(images[0])] * (-len(images) % 4)
    grid = np.concatenate([np.concatenate(images[i:i + 4], axis=1) for i in range(0, len(images), 4)], axis=0)
    canvas = Image.new("RGB", (grid.shape[1], grid.shape[0] + 26))
    canvas.paste(Image.fromarray(grid), (0, 26))
    draw = ImageDraw.Draw(canvas)
    font = _font(15)
    draw.text((6, 5), f"white: boxes scoring >= {threshold:.2f} (class:score)", fill=(255, 255, 255), font=font)
    draw.text((grid.shape[1] // 2, 5), f"grey: an image's best box when none reaches {threshold:.2f}",
              fill=(150, 150, 150), font=font)
    with atomic_path(path) as tmp:
        canvas.save(tmp)
    return Path(path)


# --- commands --------------------------------------------------------------------------
def train(ctx):
    cfg = ctx.config
    per_replica_batch_size(cfg.batch_size, ctx.strategy)
    train_paths, train_labels, train_sizes = load_split(ctx, cfg, "train")
    val_paths, val_labels, val_sizes = load_split(ctx, cfg, "val")
    train_decoded = banana.decoded_dataset(train_paths, train_labels, train_sizes, cfg.image_size)
    val_data = banana.batches(banana.decoded_dataset(val_paths, val_labels, val_sizes, cfg.image_size),
                              cfg.batch_size)
    steps_per_epoch = -(-len(train_paths) // cfg.batch_size)
    with ctx.strategy.scope():
        model = build(cfg, total_steps=cfg.epochs * steps_per_epoch)
    run = ctx.run()
    detector = make_detector(model, cfg.nms_threshold)

    def data(epoch):
        return banana.batches(train_decoded, cfg.batch_size, shuffle_seed=epoch_seed(cfg.seed, epoch),
                              flip=cfg.flip, count=len(train_paths))

    def validation_map(epoch, logs):
        lr = {"lr": float(model.optimizer.learning_rate)}
        if (epoch + 1) % cfg.eval_every and epoch + 1 != cfg.epochs:
            return lr
        dets, labels = detect_dataset(detector, val_data)
        return {**lr, **{"val_" + k: v for k, v in coco_map(labels, dets, val_sizes).items()}}

    tic = time.perf_counter()
    history = training.fit(model, data, run, epochs=cfg.epochs, validation_data=val_data,
                           on_epoch_end=validation_map)
    wall = time.perf_counter() - tic
    write_detection_grid(detector, val_paths[:8], cfg.image_size, run.file("detections.png"))
    last = history[-1]
    keys = ("loss", "class_err", "bbox_mae", "val_loss", "val_class_err", "val_bbox_mae", "val_map50", "val_map")
    epoch_s = float(np.median([h["time_s"] for h in history]))
    return {**{k: last[k] for k in keys if k in last}, "epochs": last["epoch"], "train_wall_s": round(wall, 1),
            "median_epoch_s": round(epoch_s, 2), "examples_per_s": round(len(train_paths) / epoch_s, 1),
            "run_dir": str(run.path), "detections_png": str(run.file("detections.png"))}


def restore(ctx):
    """The TinySSD of `ctx.run_dir`, rebuilt from its config and restored from its newest intact checkpoint."""
    model = build(ctx.config)
    ctx.restore(model)
    return model


def evaluate(ctx):
    cfg = ctx.config
    paths, labels, sizes = load_split(ctx, cfg, "val")
    model = restore(ctx)
    data = banana.batches(banana.decoded_dataset(paths, labels, sizes, cfg.image_size), cfg.batch_size)
    errors = model.evaluate(data, verbose=0, return_dict=True)
    dets, labels = detect_dataset(make_detector(model, cfg.nms_threshold), data)
    return {**coco_map(labels, dets, sizes), "class_err": errors["class_err"], "bbox_mae": errors["bbox_mae"],
            "loss": errors["loss"], "images": len(paths)}


def _predict_arguments(parser):
    parser.add_argument("images", nargs="+", type=Path, help="image files (PNG, JPEG, ...)")
    parser.add_argument("--out", type=Path, help="output directory (default: <run-dir>/predictions)")
    parser.add_argument("--threshold", type=float, default=DRAW_THRESHOLD,
                        help="draw boxes scoring at least this in white; an image with none gets its best box in grey")


def predict(ctx):
    cfg, args = ctx.config, ctx.args
    if not 0 <= args.threshold <= 1:
        raise UsageError(f"--threshold must be in [0, 1], got {args.threshold}")
    originals, batch = read_images(args.images, cfg.image_size)
    out = writable_dir(args.out or Path(ctx.run_dir) / "predictions")  # before the model is built
    detector = make_detector(restore(ctx), cfg.nms_threshold)
    tic = time.perf_counter()
    dets = np.concatenate([detector(tf.constant(batch[i:i + cfg.batch_size])).numpy()
                           for i in range(0, len(batch), cfg.batch_size)])
    seconds = time.perf_counter() - tic
    found = 0
    below = 0
    for path, im, d in zip(args.images, originals, dets):
        draw_detections(np.asarray(im), d, args.threshold, best=True).save(out / f"{path.stem}_pred.png")
        above = int(np.sum((d[:, 0] >= 0) & (d[:, 1] >= args.threshold)))
        found, below = found + above, below + int(above == 0 and d[0, 0] >= 0)
    return {"images": len(originals), "detections": found, "threshold": args.threshold,
            "grey_boxes": below, "out": str(out), "detect_s": round(seconds, 3)}


COMMANDS = {
    "train": cli.Command(train, "train TinySSD on banana-detection data", trains=True),
    "evaluate": cli.Command(evaluate, "mAP@.5, COCO mAP, class_err and bbox_mae on the validation split"),
    "predict": cli.Command(predict, "draw predicted boxes on images", add_arguments=_predict_arguments),
}


def main(argv=None):
    return cli.main("TinySSD object detection (D2L 14.7)", Config, COMMANDS, demo=DEMO, argv=argv,
                    presets={"book": BOOK})


if __name__ == "__main__":
    sys.exit(main())
