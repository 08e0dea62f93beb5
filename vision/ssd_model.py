"""TinySSD's model, training and evaluation (`vision.ssd` is its command and configuration).

The network, its train step, the detector (softmax, offset decoding, NMS) and what the `train`,
`evaluate` and `predict` commands do live here, with TensorFlow, so `python -m vision.ssd --help` and a
usage error answer without loading it.
"""
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from common import training
from common.data import epoch_seed
from common.distribute import per_replica_batch_size, scale_loss, use_xla
from common.errors import DatasetError, UsageError
from common.files import writable_dir
from vision import banana, detection_data
from vision.boxes import multibox_prior, multibox_target, top_detections
from vision.detection_draw import draw_detections, read_images, write_detection_grid
from vision.detection_eval import bbox_abs_errors, class_errors, coco_map
from vision.ssd_loss import ignore_band, prior_bias, ssd_loss

SIZES = ((0.2, 0.272), (0.37, 0.447), (0.54, 0.619), (0.71, 0.79), (0.88, 0.961))
RATIOS = ((1, 2, 0.5),) * 5
MAX_DETECTIONS = 100


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
    num_classes = config.num_classes or 1  # 0 ("from the data") before any data is read: the banana set's 1
    model = TinySSD(num_classes, config.image_size, config.bbox_loss, config.class_loss, config.neg_ratio,
                    config.ignore_iou, config.pos_iou, name="tinyssd")
    model(tf.zeros([1, config.image_size, config.image_size, 3], tf.uint8))
    if config.class_loss == "focal":  # start every anchor at background probability 0.99 (RetinaNet)
        for i in range(5):
            head = getattr(model, f"cls_{i}")
            head.bias.assign(prior_bias(model.num_anchors, num_classes))
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
def load_split(ctx, config, split, classes=None):
    """The split as a `vision.detection_data.DetectionSet`: `--data-dir` in its format (COCO, VOC or banana;
    `--format` or detected), else the generated banana set or the download. `classes`: the names the run's
    class indices mean (its `classes.json`), which the split must use. `--tfds voc/2012`: TFDS's prepared
    VOC, written once into the cache in COCO's layout (`detection_data.tfds_voc`)."""
    if getattr(ctx, "tfds", None) is not None:
        return _tfds_split(ctx, split, classes)
    fmt = None
    if ctx.data_dir is not None:
        fmt, root = detection_data.detect_format(ctx.data_dir, config.format)
    elif config.format not in ("auto", "banana"):
        raise UsageError(f"--format {config.format} reads --data-dir; pass the folder holding the dataset")
    if fmt in ("coco", "voc"):
        return (detection_data.read_coco if fmt == "coco" else detection_data.read_voc)(root, split, classes)
    root = banana.banana_root(ctx.data_dir, config.source, config.train_images, config.val_images,
                              config.data_seed, config.max_objects, config.generated_size)
    return detection_data.DetectionSet(*banana.read_bananas(root, split))


def _tfds_split(ctx, split, classes):
    """A split of the `--tfds` VOC dataset through its cached COCO copy (keyed by name, version and folder)."""
    import hashlib

    from common import tfds_source
    from common.data import cache_root

    name, folder = ctx.tfds["name"], ctx.tfds["data_dir"]
    version = tfds_source.describe(name, folder)["version"]
    key = hashlib.sha1(str(folder).encode()).hexdigest()[:8]
    root = cache_root() / "tfds-detection" / f"{tfds_source.dataset_name(name).replace('/', '-')}-{version}-{key}"
    examples = ctx.tfds_examples(detection_data.TFDS_SPLITS[split])
    data = detection_data.read_coco(detection_data.tfds_voc(examples, root, split), split, classes)
    return data._replace(ignore_kind="difficult")  # VOC's difficult objects, kept as COCO's ignored boxes


def data_classes(data, config):
    """The number of classes a run on `data` (DetectionSets) has: `--num-classes`, or with 0 the data's (its
    class names, else the largest class index + 1); a class beyond `--num-classes` is one line."""
    named = data[0].classes
    top = [int(d.labels[..., 0].max()) for d in data]
    found = len(named) if named else max(top) + 1
    if config.num_classes and found > config.num_classes:
        where = (f"{Path(data[0].paths[0]).parent.parent} has classes {', '.join(named)}" if named else
                 f"{Path(data[int(np.argmax(top))].paths[0]).parent.parent / 'label.csv'} has class {found - 1}")
        raise DatasetError(f"{where}; pass --num-classes {found} or more, or 0 (the number in the data)")
    return config.num_classes or found


# --- commands --------------------------------------------------------------------------
def train(ctx):
    cfg = ctx.config
    per_replica_batch_size(cfg.batch_size, ctx.strategy)
    train_set = load_split(ctx, cfg, "train")
    val_set = load_split(ctx, cfg, "val", train_set.classes)
    (train_paths, train_labels, train_sizes), (val_paths, val_labels, val_sizes) = train_set[:3], val_set[:3]
    cfg.num_classes = data_classes((train_set, val_set), cfg)  # recorded in config.json
    train_decoded = banana.decoded_dataset(train_paths, train_labels, train_sizes, cfg.image_size)
    val_data = banana.batches(banana.decoded_dataset(val_paths, val_labels, val_sizes, cfg.image_size),
                              cfg.batch_size)
    steps_per_epoch = -(-len(train_paths) // cfg.batch_size)
    with ctx.strategy.scope():
        model = build(cfg, total_steps=cfg.epochs * steps_per_epoch)
    run = ctx.run()
    if train_set.classes is not None:
        run.write_json(detection_data.class_names_file(run.path).name, list(train_set.classes))
    detector = make_detector(model, cfg.nms_threshold)

    def data(epoch):
        return banana.batches(train_decoded, cfg.batch_size, shuffle_seed=epoch_seed(cfg.seed, epoch),
                              flip=cfg.flip, count=len(train_paths))

    def validation_map(epoch, logs):
        lr = {"lr": float(model.optimizer.learning_rate)}
        if (epoch + 1) % cfg.eval_every and epoch + 1 != cfg.epochs:
            return lr
        dets, labels = detect_dataset(detector, val_data)
        scores = coco_map(labels, dets, val_sizes, ignored=val_set.ignored, ignore_kind=val_set.ignore_kind)
        return {**lr, **{"val_" + k: v for k, v in scores.items()}}

    tic = time.perf_counter()
    history = training.fit(model, data, run, epochs=cfg.epochs, validation_data=val_data,
                           on_epoch_end=validation_map)
    wall = time.perf_counter() - tic
    write_detection_grid(detector, val_paths[:8], cfg.image_size, run.file("detections.png"),
                         classes=train_set.classes)
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
    classes = detection_data.read_class_names(ctx.run_dir)
    val_set = load_split(ctx, cfg, "val", classes)
    paths, labels, sizes = val_set[:3]
    data_classes((val_set,), cfg)
    model = restore(ctx)
    data = banana.batches(banana.decoded_dataset(paths, labels, sizes, cfg.image_size), cfg.batch_size)
    errors = model.evaluate(data, verbose=0, return_dict=True)
    dets, labels = detect_dataset(make_detector(model, cfg.nms_threshold), data)
    scores = coco_map(labels, dets, sizes, classes, val_set.ignored, val_set.ignore_kind)
    return {**scores, "class_err": errors["class_err"], "bbox_mae": errors["bbox_mae"],
            "loss": errors["loss"], "images": len(paths)}


def predict(ctx):
    """Draw the detections on `ctx.args.images` (the command, `vision.ssd`, has checked --threshold)."""
    cfg, args = ctx.config, ctx.args
    originals, batch = read_images(args.images, cfg.image_size)
    out = writable_dir(args.out or Path(ctx.run_dir) / "predictions")  # before the model is built
    classes = detection_data.read_class_names(ctx.run_dir)
    detector = make_detector(restore(ctx), cfg.nms_threshold)
    tic = time.perf_counter()
    dets = np.concatenate([detector(tf.constant(batch[i:i + cfg.batch_size])).numpy()
                           for i in range(0, len(batch), cfg.batch_size)])
    seconds = time.perf_counter() - tic
    found = 0
    below = 0
    for path, im, d in zip(args.images, originals, dets):
        picture = draw_detections(np.asarray(im), d, args.threshold, best=True, classes=classes)
        picture.save(out / f"{path.stem}_pred.png")
        above = int(np.sum((d[:, 0] >= 0) & (d[:, 1] >= args.threshold)))
        found, below = found + above, below + int(above == 0 and d[0, 0] >= 0)
    kept = dets[(dets[..., 0] >= 0) & (dets[..., 1] >= args.threshold)][:, 0].astype(int)
    per_class = {(classes[c] if classes else str(c)): int(n) for c, n in zip(*np.unique(kept, return_counts=True))}
    return {"images": len(originals), "detections": found, "per_class": per_class, "threshold": args.threshold,
            "grey_boxes": below, "out": str(out), "detect_s": round(seconds, 3)}
