"""Fully convolutional network (FCN-32s) for semantic segmentation, the book's chapter 14.11.

A ResNet backbone without its pooling and classifier (output stride 32), a 1x1
convolution to the 21 VOC classes, and a transposed convolution (kernel 64, stride 32)
initialised to bilinear upsampling back to the input size. The loss is per-pixel
cross-entropy that ignores VOC's 255 boundary pixels. Scores: pixel accuracy and mean
IoU from a confusion matrix.

    python -m vision.fcn train --demo                 # ~1 CPU-minute; 3.1 min wall on a busy 2-core box
    python -m vision.fcn train                        # default: offline photograph set in VOC format (~15 min)
    python -m vision.fcn train --dataset voc2012 --crop 320x480 --width 64   # the book's setting
    python -m vision.fcn evaluate [--run-dir R] [--data-dir DIR]
    python -m vision.fcn predict IMAGE... [--run-dir R] [--out DIR]
    python -m vision.fcn export --out DIR [--probabilities] [--format tflite]   # serve it: docs/export.md
"""
import re
import sys
from dataclasses import dataclass, field

from common import cli
from common.errors import UsageError
from common.export import add_arguments as export_arguments
from vision.architectures import BACKBONES, FEATURE_STRIDE, HEADS


def _range(cast, help, expects):
    """Field metadata for a positive `LOW-HIGH` range of `cast` values ("0.5-1.5" or "0.5,1.5" ->
    (0.5, 1.5)), parsed once at the CLI; `--help` shows defaults as typed (0.5-1.5)."""
    def parse(text):
        values = tuple(cast(v) for v in (text if isinstance(text, (list, tuple)) else re.split("[-,]", str(text))))
        if len(values) != 2 or min(values) <= 0 or values[0] > values[1]:
            raise ValueError
        return values
    return {"parse": parse, "metavar": "LOW-HIGH", "separator": "-", "help": help, "expects": expects}


def _size_range(help):
    """Pixel side lengths LOW-HIGH ("128-160" -> (128, 160))."""
    return _range(int, help, "two positive integers LOW-HIGH with LOW <= HIGH, like 128-160")


def _scale_range(help):
    """A positive factor range LOW-HIGH ("0.5-1.5" -> (0.5, 1.5))."""
    return _range(float, help, "two positive numbers LOW-HIGH with LOW <= HIGH, like 0.5-1.5")


@dataclass
class Config(cli.TrainConfig):
    epochs: int = 45
    batch_size: int = 4
    lr: float = 3e-3
    seed: int = 0
    head: str = field(default="fcn8s", metadata={
        "choices": list(HEADS),
        "help": "fcn32s: the book's one k64/s32 upsampling of the stride-32 scores; fcn16s/fcn8s: Long et al.'s "
                "skip connections, fusing scores of the stride-16 (and stride-8) stage"})
    crop: tuple = field(default=(256, 256), metadata=cli.int_pair(
        "training crop HxW, multiples of 32 (the book: 320x480)"))
    scale: tuple = field(default=(0.5, 1.5), metadata=_scale_range(
        "random resized crops: resize each training image by a log-uniform factor in LOW-HIGH, padding it up to "
        "the crop; 1-1 = the book's plain crops (images smaller than the crop are dropped)"))
    jitter: float = field(default=0.3, metadata=cli.bounds(
        "[0, 1)", "colour jitter: brightness, contrast and saturation factors in [1 - j, 1 + j] (0: off)"))
    backbone: str = field(default="resnet18", metadata={"choices": list(BACKBONES), "help": "feature extractor"})
    backbone_weights: str = field(default="none", metadata={
        "help": "none (train from scratch), imagenet (resnet50; needs the network) or PATH to a weights file",
        "metavar": "none|imagenet|PATH"})
    width: int = field(default=32, metadata=cli.at_least(
        1, "resnet18 channels in the first stage (64 = the standard ResNet-18; 32 keeps CPU runs practical)"))
    optimizer: str = field(default="adam", metadata={"choices": ["adam", "sgd"], "help": "optimizer"})
    momentum: float = field(default=0.9, metadata=cli.bounds("[0, 1)", "SGD momentum (the book: 0)"))
    weight_decay: float = field(default=1e-4, metadata=cli.bounds(
        "[0, inf)", "decoupled weight decay on the convolution kernels (not on biases or batch-norm scales/shifts)"))
    lr_schedule: str = field(default="cosine", metadata={
        "choices": ["cosine", "constant"],
        "help": "cosine: decay to lr/100 over all steps (resumed with another --epochs, it continues from the "
                "current rate over the remaining steps); constant: lr throughout"})
    dataset: str = field(default="photos", metadata={
        "choices": ["photos", "shapes", "voc2012"],
        "help": "photos: offline set of textured objects on real photographs (300 train / 60 val, "
                "vision.photo_segmentation); shapes: offline generated shapes on flat textures; voc2012: Pascal VOC "
                "(download or cache); --data-dir (VOC or mask folders, --format) overrides all three"})
    num_classes: int = field(default=0, metadata=cli.at_least(
        0, "output classes; 0: as many as the data names (classes.txt, class_names.txt; VOC: 21)"))
    format: str = field(default="auto", metadata={
        "choices": ["auto", "voc", "masks"],
        "help": "layout of --data-dir: voc (VOCdevkit/VOC2012) or masks (classes.txt, train/ and val/ each with "
                "images/ and masks/ PNGs of class indices, 255 = ignore); auto: detected"})
    shapes_train: int = field(default=800, metadata=cli.at_least(1, "images in the generated shapes train split"))
    shapes_val: int = field(default=100, metadata=cli.at_least(1, "images in the generated shapes val split"))
    shapes_size: tuple = field(default=(128, 160), metadata=_size_range(
        "side lengths of the generated images, LOW-HIGH pixels"))
    data_seed: int = field(default=0, metadata=cli.bounds(
        f"[0, {2**32 - 1}]", "seed of the generated photos/shapes set (--seed changes training only, not the data)"))
    val_every: int = field(default=10, metadata=cli.bounds(
        "[0, inf)", "score val mIoU every N epochs (0: only at the end)"))
    trimap_px: int = field(default=4, metadata=cli.at_least(
        1, "width of the boundary band (trimap) scored by trimap_miou: labelled pixels within this many px of a "
           "VOC void (255) pixel"))

    def validate(self):
        super().validate()
        h, w = self.crop
        if h % FEATURE_STRIDE or w % FEATURE_STRIDE:
            raise UsageError(f"--crop {h}x{w}: both sides must be multiples of {FEATURE_STRIDE}, e.g. 320x480")
        if self.backbone_weights == "imagenet" and self.backbone != "resnet50":
            raise UsageError("--backbone-weights imagenet needs --backbone resnet50 "
                             "(no ImageNet weights exist for the Keras resnet18); or use none or a PATH")


# The demo keeps batch 8 at lr 4e-3 (the full default's until 2026-11-29): 40 steps an epoch on the shapes set.
DEMO = {"epochs": 5, "batch_size": 8, "lr": 4e-3, "dataset": "shapes", "shapes_train": 320, "shapes_val": 48,
        "crop": (128, 128), "scale": (1.0, 1.0), "jitter": 0.0, "val_every": 1, "head": "fcn32s"}
# The book's recipe (d2l 14.11): FCN-32s, 320x480 random crops, no scale or colour augmentation, SGD without
# momentum, lr 1e-3, weight decay 1e-3, batch 32, 5 epochs, constant rate, standard-width ResNet-18.
BOOK = {"head": "fcn32s", "crop": (320, 480), "scale": (1.0, 1.0), "jitter": 0.0, "optimizer": "sgd", "momentum": 0.0,
        "lr": 1e-3, "weight_decay": 1e-3, "batch_size": 32, "epochs": 5, "lr_schedule": "constant", "width": 64}
PRESETS = {"book": BOOK}


def _evaluate_arguments(parser):
    parser.add_argument("--split", default="val", help="ImageSets/Segmentation split to score (default: val)")


def _predict_arguments(parser):
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files to segment")
    parser.add_argument("--out", help="output directory (default: RUN_DIR/predictions)")


def _export_arguments(parser):
    export_arguments(parser)
    parser.add_argument("--probabilities", action="store_true",
                        help="also output every pixel's per-class probabilities (batch, H, W, classes)")


MODEL = cli.ModelModule("vision.fcn_model")  # the model, its training and evaluation, imported when a command runs
__getattr__ = MODEL.forward  # vision.fcn.build_fcn, .build, .make_scorer, .masked_cross_entropy, ... (fcn_model)

COMMANDS = {
    "train": cli.Command(MODEL.command("train"), "train FCN on VOC2012-format data or image and mask folders",
                         trains=True),
    "evaluate": cli.Command(MODEL.command("evaluate"), "pixel accuracy and mIoU of a trained run",
                            _evaluate_arguments),
    "predict": cli.Command(MODEL.command("predict"), "write palette-overlay PNGs for images", _predict_arguments),
    "export": cli.Command(cli.ModelModule("vision.serving").command("fcn_export"),
                          "write a SavedModel (and TFLite) segmenting encoded images, to serve",
                          add_arguments=_export_arguments),
}
SPEC = cli.Spec("vision.fcn", "FCN semantic segmentation (d2l 14.11; FCN-16s/8s of Long et al.)", Config, COMMANDS,
                DEMO, PRESETS, MODEL)
main, load = SPEC.main, SPEC.load
train, evaluate, predict = SPEC.api("train"), SPEC.api("evaluate"), SPEC.api("predict")
export = SPEC.api("export")


if __name__ == "__main__":
    sys.exit(main())
