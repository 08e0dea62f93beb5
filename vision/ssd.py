"""TinySSD single-shot multibox detection (D2L 14.7): `python -m vision.ssd train|evaluate|predict|export`.

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

Data: `--data-dir` in COCO's layout, Pascal VOC's XML or the banana-detection layout (detected, or
`--format`; `vision.detection_data`), any number of named classes, else `--source generated` (the
default: the offline generated banana set, written once into the cache; it depends on
`--data-seed` only, so `--seed` varies training, not the data) or `--source download`
(the book's archive, SHA-1 checked).
"""
import sys
from dataclasses import dataclass, field
from pathlib import Path

from common import cli
from common.errors import UsageError
from common.export import add_arguments as export_arguments
from vision.detection_draw import DRAW_THRESHOLD

# the --class-loss choices, the class losses of `vision.ssd_loss.ssd_loss`
CLASS_LOSSES = ("focal", "hard_negative", "mean")


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
    num_classes: int = field(default=0, metadata=cli.at_least(0, "object classes; 0: as many as the data has"))
    format: str = field(default="auto", metadata={
        "choices": ["auto", "coco", "voc", "banana"],
        "help": "layout of --data-dir: COCO (annotations/instances_<split>.json + <split>/), Pascal VOC XML "
                "(Annotations/, JPEGImages/, ImageSets/Main/) or banana (bananas_train/label.csv); auto: detected"})
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


def _predict_arguments(parser):
    parser.add_argument("images", nargs="+", type=Path, help="image files (PNG, JPEG, ...)")
    parser.add_argument("--out", type=Path, help="output directory (default: <run-dir>/predictions)")
    parser.add_argument("--threshold", type=float, default=DRAW_THRESHOLD,
                        help="draw boxes scoring at least this in white; an image with none gets its best box in grey")


def _export_arguments(parser):
    export_arguments(parser)
    parser.add_argument("--max-detections", type=cli.positive_int, default=100,
                        help="detections per image after NMS; the outputs are padded to this many (default: 100)")


TFDS = {"voc": "Pascal VOC detection, voc/2012 or voc/2007: 20 classes"}  # --tfds: what train/evaluate read
MODEL = cli.ModelModule("vision.ssd_model")  # the model, its training and evaluation, imported when a command runs
__getattr__ = MODEL.forward  # vision.ssd.TinySSD, .build, .make_detector, .SIZES, ... from vision.ssd_model


def _predict(ctx):
    """Draw the detections on `ctx.args.images` (a bad --threshold is refused before TensorFlow loads)."""
    if not 0 <= ctx.args.threshold <= 1:
        raise UsageError(f"--threshold must be in [0, 1], got {ctx.args.threshold}")
    return MODEL().predict(ctx)


COMMANDS = {
    "train": cli.Command(MODEL.command("train"), "train TinySSD on COCO, VOC or banana-detection data", trains=True),
    "evaluate": cli.Command(MODEL.command("evaluate"),
                            "mAP@.5, COCO mAP (and per named class), class_err and bbox_mae on the validation split"),
    "predict": cli.Command(_predict, "draw predicted boxes on images",
                           add_arguments=_predict_arguments),
    "export": cli.Command(cli.ModelModule("vision.serving").command("ssd_export"),
                          "write a SavedModel (and TFLite) detecting boxes on encoded images, to serve",
                          add_arguments=_export_arguments),
}
PRESETS = {"book": BOOK}
SPEC = cli.Spec("vision.ssd", "TinySSD object detection (D2L 14.7)", Config, COMMANDS, DEMO, PRESETS, MODEL,
                tfds=TFDS)
main, load = SPEC.main, SPEC.load
train, evaluate, predict = SPEC.api("train"), SPEC.api("evaluate"), SPEC.api("predict")
export = SPEC.api("export")


if __name__ == "__main__":
    sys.exit(main())