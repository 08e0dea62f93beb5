"""FCN's model, training and evaluation (`vision.fcn` is its command and configuration).

The network, its loss and optimizer, the confusion-matrix scorer and what the `train`, `evaluate`
and `predict` commands do live here, with TensorFlow, so `python -m vision.fcn --help` and a usage
error answer without loading it.
"""
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from common import training
from common.distribute import per_replica_batch_size, use_xla
from common.errors import DatasetError, UsageError
from common.files import writable_dir
from vision import mask_folders, photo_segmentation, voc
from vision.detection_data import read_class_names
from vision.architectures import FEATURE_STRIDE, HEADS
from vision.resnet_model import build_backbone
from vision.segmentation_metrics import confusion_matrix, iou_by_name, mean_iou, pixel_accuracy, trimap_labels


# --- model --------------------------------------------------------------------------
def bilinear_kernel(in_channels, out_channels, kernel_size):
    """A (k, k, out, in) Conv2DTranspose kernel that upsamples each channel bilinearly.

    Channel i maps to channel i only, with the 2-D tent filter
    (1 - |x - c| / f)(1 - |y - c| / f), f = ceil(k / 2), c = f - 0.5 for even k (the
    book's `bilinear_kernel`, transposed to Keras' layout).
    """
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = np.arange(kernel_size, dtype=np.float64)
    tent = 1 - np.abs(og - center) / factor
    filt = np.outer(tent, tent)
    weight = np.zeros((kernel_size, kernel_size, out_channels, in_channels), np.float32)
    diagonal = np.arange(min(in_channels, out_channels))
    weight[:, :, diagonal, diagonal] = filt[..., None]
    return weight


@keras.saving.register_keras_serializable(package="dlsuite")
class BilinearUpsampling(keras.initializers.Initializer):
    """Initializer for a Conv2DTranspose kernel (k, k, out, in): per-channel bilinear upsampling."""

    def __call__(self, shape, dtype=None):
        k, k2, out_channels, in_channels = shape
        if k != k2:
            raise ValueError(f"bilinear upsampling needs a square kernel, got {shape}")
        return keras.ops.convert_to_tensor(bilinear_kernel(in_channels, out_channels, k), dtype=dtype)

    def get_config(self):
        return {}


@keras.saving.register_keras_serializable(package="dlsuite")
def masked_cross_entropy(labels, logits):
    """Per-pixel softmax cross-entropy (B, H, W) with label-255 pixels contributing 0.

    Keras averages it over all B*H*W pixels (summed over replicas), the book's
    `mean(1).mean(1)`, so N replicas reproduce one replica on the global batch exactly.
    """
    labels = keras.ops.cast(labels, "int32")
    valid = keras.ops.not_equal(labels, voc.IGNORE_INDEX)
    safe = keras.ops.where(valid, labels, 0)
    loss = keras.losses.sparse_categorical_crossentropy(safe, logits, from_logits=True)
    return keras.ops.where(valid, loss, 0.0)


def _upsample(x, num_classes, factor, name, trainable=True):
    """A Conv2DTranspose (kernel 2 factor, stride factor) initialised to bilinear upsampling by `factor`
    (kept fixed when not `trainable`)."""
    return keras.layers.Conv2DTranspose(num_classes, 2 * factor, factor, padding="same",
                                        kernel_initializer=BilinearUpsampling(), name=name, trainable=trainable)(x)


def build_fcn(num_classes=voc.NUM_CLASSES, backbone="resnet18", weights="none", width=64, head="fcn32s"):
    """FCN: (B, H, W, 3) pixels 0-255 -> (B, H, W, num_classes) logits; H, W multiples of 32.

    fcn32s (the book's): a 1x1 `classifier` on the stride-32 features, one k64/s32 `upsample`.
    fcn16s / fcn8s (Long et al. 2015, section 4.2): the stride-32 scores are upsampled 2x
    (`upsample32_to_16`, k4/s2) and added to a 1x1 `score16` of the stride-16 stage; fcn8s
    repeats that once more with the stride-8 stage (`upsample16_to_8`, `score8`); the fused
    map is upsampled to the input by `upsample` (k32/s16 or k16/s8). Every transposed
    convolution starts as bilinear upsampling; the skip scorers start at zero, so the untrained
    16s/8s net equals the 32s net (the paper's initialisation). The 2x upsamplings are learned;
    the final `upsample` of fcn16s/8s stays fixed (not trainable), as in the paper, while the
    book's fcn32s learns its own.
    """
    if head not in HEADS:
        raise UsageError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
    fused = {"fcn32s": (), "fcn16s": (16,), "fcn8s": (16, 8)}[head]  # strides of the stages fused in
    base = build_backbone(backbone, weights, width, stages=bool(fused))
    *stages, stride32 = base.outputs  # the stride-8 and stride-16 features too when any are fused
    stage_features = dict(zip((8, 16), stages))
    score = keras.layers.Conv2D(num_classes, 1, name="classifier")(stride32)
    for stride in fused:
        score = _upsample(score, num_classes, 2, f"upsample{2 * stride}_to_{stride}")
        skip = keras.layers.Conv2D(num_classes, 1, kernel_initializer="zeros", name=f"score{stride}")(
            stage_features[stride])
        score = keras.layers.Add(name=f"fuse{stride}")([score, skip])
    # fixed in the skip nets (no kernel gradient: about 13% of an fcn8s step at 256x256 on a CPU)
    x = _upsample(score, num_classes, fused[-1] if fused else FEATURE_STRIDE, "upsample", trainable=not fused)
    return keras.Model(base.input, x, name=f"{head}_{backbone}")


def make_optimizer(cfg, steps_per_epoch, model):
    """Adam or SGD (momentum 0.9) for `cfg`, with the cosine schedule over `cfg.epochs * steps_per_epoch`
    steps (`training.CosineSchedule`, which a resumed run continues without a jump) and decoupled
    weight decay on `model`'s kernels only: biases and batch-norm gamma/beta (every trainable
    variable of rank <= 1) are excluded, as the --weight-decay help says."""
    lr = cfg.lr
    if cfg.lr_schedule == "cosine":
        lr = training.CosineSchedule(cfg.lr, cfg.epochs * steps_per_epoch, alpha=0.01)
    if cfg.optimizer == "adam":
        opt = keras.optimizers.Adam(lr, weight_decay=cfg.weight_decay or None)
    else:
        opt = keras.optimizers.SGD(lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay or None)
    if cfg.weight_decay:
        # By variable, not by name: Keras 3 names them `kernel`, `bias`, `gamma`, `beta`, without the layer.
        opt.exclude_from_weight_decay(var_list=[v for v in model.trainable_variables if len(v.shape) <= 1])
    return opt


def build(cfg, steps_per_epoch=1, weights=None):
    """The FCN for `cfg`, compiled with its optimizer and the masked loss (call it under a strategy scope)."""
    model = build_fcn(cfg.num_classes or voc.NUM_CLASSES, cfg.backbone, weights or cfg.backbone_weights, cfg.width,
                      cfg.head)  # num_classes 0 (a run from before it followed the data): VOC's 21
    model.compile(make_optimizer(cfg, steps_per_epoch, model), loss=masked_cross_entropy, jit_compile=use_xla())
    return model


# --- data ---------------------------------------------------------------------------
def dataset_root(ctx):
    """The directory to read: --data-dir (the mask-folder layout's root or VOC2012, `--format` or detected), the
    VOC cache/download, or the generated photos or shapes set (VOC2012)."""
    cfg = ctx.config
    if ctx.data_dir is not None:
        fmt, root = mask_folders.detect_format(ctx.data_dir, cfg.format)
        return root if fmt == "masks" else voc.voc_root(root)
    if cfg.format == "masks":
        raise UsageError("--format masks reads --data-dir; pass the folder holding classes.txt, train/ and val/")
    if cfg.dataset == "voc2012":
        return voc.voc_root(None)
    if cfg.dataset == "photos":
        return photo_segmentation.photo_voc(seed=cfg.data_seed)
    return voc.shapes_voc(cfg.shapes_train, cfg.shapes_val, cfg.shapes_size, seed=cfg.data_seed)


def class_names(root):
    """The class names of a dataset root: the mask-folder layout's classes.txt, else VOC's (`voc.class_names`)."""
    return mask_folders.class_names(root) if mask_folders.is_layout(root) else voc.class_names(root)


def _split(root, split, names=None):
    """Image paths, label paths and (N, 2) sizes of `split` (VOC's or the mask-folder layout's), every label
    checked against the set's `names` (`class_names(root)` when not given)."""
    names = names or class_names(root)
    if mask_folders.is_layout(root):
        names_file, formats = Path(root) / mask_folders.CLASSES_FILE, tuple(sorted(mask_folders.IMAGE_FORMATS))
        images, labels = mask_folders.read_split(root, split)
    else:
        names_file, formats = Path(root) / voc.CLASS_NAMES_FILE, ("JPEG",)
        images, labels = voc.read_split(root, split)
    return images, labels, voc.check_split(images, labels, num_classes=len(names),
                                           names_file=names_file if names_file.exists() else None, formats=formats)


def make_scorer(model, trimap_px=4):
    """`scorer(images, labels, sizes, batch_size)` -> two (21, 21) confusion matrices of `model`: all
    labelled pixels, and those of the trimap (within `trimap_px` of a void pixel; `trimap_labels`).

    Whole images are padded at the bottom/right to a multiple of 32 (padding labelled
    `voc.PAD_LABEL`, so neither scored nor taken for a boundary); one traced function serves every batch.
    """
    spec = (tf.TensorSpec((None, None, None, 3), tf.float32), tf.TensorSpec((None, None, None), tf.int32))
    num_classes = int(model.output_shape[-1])

    @tf.function(input_signature=spec)
    def batch_counts(x, y):
        predicted = tf.argmax(model(x, training=False), axis=-1)
        band = trimap_labels(y, trimap_px, outside_index=voc.PAD_LABEL)
        y = tf.where(tf.equal(y, voc.PAD_LABEL), voc.IGNORE_INDEX, y)
        return confusion_matrix(y, predicted, num_classes), confusion_matrix(band, predicted, num_classes)

    def scorer(images, labels, sizes, batch_size):
        cm = np.zeros((2, num_classes, num_classes), np.int64)
        pad_to = voc.padded_size(sizes, FEATURE_STRIDE)
        for x, y in voc.eval_dataset(images, labels, batch_size, pad_to, label_pad=voc.PAD_LABEL):
            cm += np.stack([c.numpy() for c in batch_counts(x, y)])
        return cm[0], cm[1]

    return scorer


def _scores(cms, prefix=""):
    cm, band = cms
    return {f"{prefix}miou": round(mean_iou(cm), 4), f"{prefix}pixel_acc": round(pixel_accuracy(cm), 4),
            f"{prefix}trimap_miou": round(mean_iou(band), 4)}


# --- commands -----------------------------------------------------------------------
def train(ctx):
    cfg = ctx.config
    root = dataset_root(ctx)
    names = class_names(root)
    images, labels, sizes = _split(root, "train", names)
    rescale = cfg.scale != (1.0, 1.0)
    if not rescale:
        images, labels = voc.filter_by_size(images, labels, sizes, cfg.crop)
    val = _split(root, "val", names)
    if cfg.num_classes and cfg.num_classes < len(names):
        raise DatasetError(f"{root} names {len(names)} classes; pass --num-classes {len(names)} or more, or 0 (as many "
                           "as the data names)")
    cfg.num_classes = cfg.num_classes or len(names)  # recorded in config.json
    per_replica_batch_size(cfg.batch_size, ctx.strategy)
    steps = len(images) // cfg.batch_size
    if steps == 0:
        raise UsageError(f"--batch-size {cfg.batch_size} exceeds the {len(images)} usable training images")
    with ctx.strategy.scope():
        model = build(cfg, steps)
    run = ctx.run()
    run.write_json("classes.json", list(names))  # what evaluate, predict and export call the indices
    scorer = make_scorer(model, cfg.trimap_px)

    def on_epoch_end(epoch, logs):
        lr = {"lr": float(model.optimizer.learning_rate)}
        last = epoch + 1 == cfg.epochs
        if last or (cfg.val_every and (epoch + 1) % cfg.val_every == 0):
            return {**lr, **_scores(scorer(*val, cfg.batch_size), "val_")}
        return lr

    data = lambda epoch: voc.train_dataset(images, labels, cfg.crop, cfg.batch_size, cfg.seed, epoch,
                                           scale=cfg.scale if rescale else None, jitter=cfg.jitter)
    history = training.fit(model, data, run, epochs=cfg.epochs, on_epoch_end=on_epoch_end)
    seconds = sum(h["time_s"] for h in history)
    result = {k: history[-1][k] for k in ("loss", "val_miou", "val_pixel_acc", "val_trimap_miou") if k in history[-1]}
    result.update(train_images=len(images), epochs=len(history), train_s=round(seconds, 1),
                  images_per_s=round(len(history) * steps * cfg.batch_size / seconds, 2), run_dir=str(run.path))
    return result


def restore(ctx):
    """The FCN of `ctx.run_dir`, rebuilt from its config and restored from its newest intact checkpoint."""
    cfg = ctx.config
    model = build_fcn(cfg.num_classes or voc.NUM_CLASSES, cfg.backbone, "none", cfg.width, cfg.head)
    ctx.restore(model)
    return model


def evaluate(ctx):
    cfg = ctx.config
    root = dataset_root(ctx)
    names = evaluation_names(ctx.run_dir, root)
    images, labels, sizes = _split(root, ctx.args.split, names)
    model = restore(ctx)
    tic = time.perf_counter()
    cms = make_scorer(model, cfg.trimap_px)(images, labels, sizes, cfg.batch_size)
    return {**_scores(cms), "split": ctx.args.split, "images": len(images), "trimap_px": cfg.trimap_px,
            "images_per_s": round(len(images) / (time.perf_counter() - tic), 2),
            "iou": iou_by_name(cms[0], names), "trimap_iou": iou_by_name(cms[1], names)}


def evaluation_names(run_dir, root):
    """The class names to score a run with on `root`: the run's (classes.json), which a set that names its
    classes (classes.txt, class_names.txt) must repeat; a run without classes.json takes the set's."""
    trained = read_class_names(run_dir)
    named = mask_folders.is_layout(root) or (Path(root) / voc.CLASS_NAMES_FILE).exists()
    if trained is None or not named:
        return trained or class_names(root)
    if class_names(root) != trained:
        raise DatasetError(f"{root} names its classes {', '.join(class_names(root))}, but the run was trained on "
                           f"{', '.join(trained)}; evaluate on data with the run's classes")
    return trained


def segment(model, image):
    """Class indices (H, W) uint8 for one RGB image (H, W, 3), padded to a multiple of 32 and cropped back."""
    h, w = image.shape[:2]
    ph, pw = (-(-v // FEATURE_STRIDE) * FEATURE_STRIDE for v in (h, w))
    padded = np.zeros((1, ph, pw, 3), np.float32)
    padded[0, :h, :w] = image
    logits = model(padded, training=False)
    return np.asarray(tf.argmax(logits[0, :h, :w], axis=-1), np.uint8)


def overlay(image, classes, alpha=0.6):
    """Blend the VOC palette colour of each non-background pixel into `image` (uint8 RGB)."""
    colours = voc.voc_palette()[classes].astype(np.float32)
    blend = (1 - alpha) * image.astype(np.float32) + alpha * colours
    return np.where((classes > 0)[..., None], blend, image).astype(np.uint8)


def predict(ctx):
    paths = [Path(p) for p in ctx.args.images]
    images = []
    for p in paths:  # every input and the output folder are checked before the model is built
        if not p.is_file():
            raise DatasetError(f"{p} not found")
        try:
            with Image.open(p) as img:
                images.append(np.asarray(img.convert("RGB")))
        except (OSError, ValueError, SyntaxError) as e:
            reason = str(e).replace(str(p), "").strip(" '") or type(e).__name__
            raise DatasetError(f"{p}: cannot read the image ({reason}); pass PNG or JPEG files") from None
    out = writable_dir(ctx.args.out or Path(ctx.run_dir) / "predictions")
    model = restore(ctx)
    tic = time.perf_counter()
    for p, image in zip(paths, images):
        classes = segment(model, image)
        Image.fromarray(overlay(image, classes)).save(out / f"{p.stem}_overlay.png")
        voc.write_label(out / f"{p.stem}_classes.png", classes)
    seconds = time.perf_counter() - tic
    print(f"wrote {2 * len(paths)} PNGs (overlay and palette classes) to {out}", file=sys.stderr)
    return {"images": len(paths), "out": str(out), "images_per_s": round(len(paths) / seconds, 2)}
