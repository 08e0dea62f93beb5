"""Segmentation data as image folders beside mask folders with a `classes.txt`, the layout labelling tools export.

    classes.txt               one class name per line: line 1 names class index 0 (the background), line 2 index 1, ...
    train/images/<name>.jpg   (or .jpeg / .png) RGB images
    train/masks/<name>.png    the class index of each pixel (greyscale or palette PNG, the image's size); 255 = ignore
    val/images/, val/masks/   the validation split, likewise (`evaluate --split NAME` reads NAME/)

Images and masks pair by name (the file name without its extension). `detect_format` tells this layout
from Pascal VOC's (`vision.voc`); `vision.fcn` reads both through the same checks and pipeline.
"""
from pathlib import Path

from common.data import layouts
from common.errors import DatasetError
from vision import voc

CLASSES_FILE = "classes.txt"
REQUIRED = (CLASSES_FILE, "train/images", "train/masks")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
IMAGE_FORMATS = {"JPEG", "PNG"}
MAX_CLASSES = voc.PAD_LABEL  # mask values 254 (evaluation's padding) and 255 (ignore) are no class


def is_layout(root):
    """True when `root` itself holds the mask-folder layout."""
    return all((Path(root) / r).exists() for r in REQUIRED)


def detect_format(data_dir, fmt="auto"):
    """`(format, folder)`: "masks" or "voc" for `data_dir` (or one to two folders below), as detected (`fmt`
    "auto") or named. Both layouts in one folder, or neither, is one `DatasetError` naming the folder."""
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise DatasetError(f"--data-dir {data_dir} does not exist or is not a directory")
    found = {k: v for k, v in (("masks", layouts(data_dir, REQUIRED)), ("voc", layouts(data_dir, voc.VOC_REQUIRED)))
             if v}
    if fmt == "auto":
        if len(found) > 1:
            raise DatasetError(f"{data_dir} holds several segmentation formats (masks: {found['masks'][0]}, voc: "
                               f"{found['voc'][0]}); keep one per folder or pass --format masks|voc")
        if not found:
            raise DatasetError(f"{data_dir} holds no segmentation layout: expected {CLASSES_FILE} with train/images/ "
                               "and train/masks/ (masks), or VOCdevkit/VOC2012/ (voc); or pass --format")
        fmt = next(iter(found))
    if fmt not in found:
        need = " and ".join(REQUIRED) if fmt == "masks" else " and ".join(voc.VOC_REQUIRED)
        raise DatasetError(f"--format {fmt}: {data_dir} does not hold {need}")
    if len(found[fmt]) > 1:
        raise DatasetError(f"{data_dir} holds {len(found[fmt])} {fmt} layouts ({found[fmt][0]}, {found[fmt][1]}); "
                           "pass the folder to read")
    return fmt, found[fmt][0]


def class_names(root):
    """The names in `root/classes.txt`, index order: 2 to `MAX_CLASSES` distinct non-empty names; a malformed
    file is one `DatasetError` naming it and the line."""
    return voc.read_class_list(Path(root) / CLASSES_FILE, MAX_CLASSES,
                               f"write 2-{MAX_CLASSES} distinct class names, one per line, index 0 first",
                               encoding="utf-8-sig")


def _by_name(folder, suffixes):
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes) if folder.is_dir() else []
    return {p.stem: p for p in files}


def read_split(root, split):
    """Image and mask paths of `root/<split>/`, paired by name (sorted). A mask without its image, an image
    without its mask, or an empty split is one `DatasetError` naming the file."""
    base = Path(root) / split
    images, masks = _by_name(base / "images", IMAGE_SUFFIXES), _by_name(base / "masks", (".png",))
    if not (base / "images").is_dir() or not (base / "masks").is_dir():
        raise DatasetError(f"{base} needs images/ and masks/ folders (the {split} split)")
    orphan = next((m for name, m in masks.items() if name not in images), None)
    if orphan is not None:
        raise DatasetError(f"{orphan} has no image {base / 'images' / orphan.stem}.jpg or .png; add it or remove "
                           "the mask")
    unlabelled = next((p for name, p in images.items() if name not in masks), None)
    if unlabelled is not None:
        raise DatasetError(f"{unlabelled} has no mask {base / 'masks' / unlabelled.stem}.png; add it or remove "
                           "the image")
    if not images:
        raise DatasetError(f"{base / 'images'} holds no .jpg or .png images")
    return [images[n] for n in images], [masks[n] for n in images]
