"""Detection data in the field's formats: COCO's JSON and Pascal VOC's XML, beside the book's banana layout.

Layouts that `--data-dir` may hold (`detect_format` tells which; one to two folders down also counts)::

    coco:    annotations/instances_<split>.json and <split>/<file_name>    (any split names: the training
             split's name holds "train", the validation split's "val": train2017/val2017, mytrain/myval)
    voc:     Annotations/<id>.xml, JPEGImages/<id>.jpg, ImageSets/Main/{train,val}.txt   (or VOCdevkit/VOC2012/)
    banana:  bananas_train/label.csv, bananas_train/images/, bananas_val/...   (`vision.banana`)

Every reader returns a `DetectionSet`. Class indices are 0, 1, ... in the order of `classes`: COCO's
categories sorted by id, VOC's object names sorted (VOC's 20 come out in the devkit's order). Boxes that
the format says to ignore (COCO `iscrowd`, VOC `difficult`) are not in `labels` (not trained on) but in
`ignored`, which evaluation gives pycocotools so that a detection on them is neither found nor false.
Reading is TensorFlow-free (NumPy, PIL, pycocotools); the writers (`write_coco`, `write_voc`) write the
layouts from the same arrays, for tests and generated sets.
"""
import contextlib
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import NamedTuple

import numpy as np

from common.data import layouts
from common.errors import DatasetError

FORMATS = ("banana", "coco", "voc")
SPLIT_WORDS = {"train": "train", "val": "val"}  # a COCO split is the one whose name holds this word
VOC_REQUIRED = ("Annotations", "JPEGImages", "ImageSets/Main")
BANANA_REQUIRED = ("bananas_train/label.csv", "bananas_val/label.csv")  # vision.banana.REQUIRED, without TF


class DetectionSet(NamedTuple):
    """One split. `paths` `(images,)` str; `labels` `(images, objects, 5)` float32 rows `(class, xmin, ymin,
    xmax, ymax)` divided by the image width/height, padded with -1 rows; `sizes` `(images, 2)` int (width,
    height); `classes` the class names in index order (None: unnamed, the banana layout); `ignored` the
    crowd/difficult boxes in the form of `labels`; `ignore_kind` "crowd" (COCO) or "difficult" (VOC)."""
    paths: np.ndarray
    labels: np.ndarray
    sizes: np.ndarray
    classes: tuple = None
    ignored: np.ndarray = None
    ignore_kind: str = None


# --- which layout --------------------------------------------------------------------------------
def _coco_roots(root):
    return [d for d in layouts(root, ["annotations"]) if any((d / "annotations").glob("instances_*.json"))]


def find_layouts(root):
    """`{format: [folders holding it]}` for every format found in `root` or one to two folders below."""
    found = {"banana": layouts(root, BANANA_REQUIRED), "coco": _coco_roots(root), "voc": layouts(root, VOC_REQUIRED)}
    return {k: v for k, v in found.items() if v}


def detect_format(data_dir, fmt="auto"):
    """`(format, folder)`: the detection layout of `data_dir` (`fmt` "auto") or the named one, and the
    folder holding it. One folder holding several formats, or none, is one `DatasetError` naming them."""
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise DatasetError(f"--data-dir {data_dir} does not exist or is not a directory")
    found = find_layouts(data_dir)
    if fmt == "auto":
        if len(found) > 1:
            raise DatasetError(f"{data_dir} holds several detection formats ({', '.join(sorted(found))}); keep one "
                               "per folder or pass --format " + "|".join(sorted(found)))
        if not found:
            raise DatasetError(f"{data_dir} holds no detection layout: expected annotations/instances_<split>.json "
                               "(COCO), Annotations/ + JPEGImages/ + ImageSets/Main/ (VOC) or bananas_train/"
                               "label.csv (banana); or pass --format")
        fmt = next(iter(found))
    if fmt not in found:
        need = {"coco": "annotations/instances_<split>.json", "voc": " + ".join(f"{r}/" for r in VOC_REQUIRED),
                "banana": "bananas_train/label.csv and bananas_val/label.csv"}[fmt]
        raise DatasetError(f"--format {fmt}: {data_dir} does not hold {need}")
    if len(found[fmt]) > 1:
        raise DatasetError(f"{data_dir} holds {len(found[fmt])} {fmt} layouts ({found[fmt][0]}, {found[fmt][1]}); "
                           "pass the folder to read")
    return fmt, found[fmt][0]


def read_split(data_dir, split, fmt="auto", classes=None):
    """The `split` ("train" or "val") of the detection set in `data_dir` as a `DetectionSet`. `classes`: the
    names a trained run's indices mean (`classes.json`); None derives them from the data."""
    fmt, root = detect_format(data_dir, fmt)
    if fmt == "coco":
        return read_coco(root, split, classes)
    if fmt == "voc":
        return read_voc(root, split, classes)
    from vision import banana  # imports TensorFlow

    return DetectionSet(*banana.read_bananas(root, split))


# --- shared by the readers -----------------------------------------------------------------------
def pack_boxes(image_index, rows, num_images):
    """Rows `(n, 5)` of images `image_index` `(n,)` -> `(num_images, max per image (>= 1), 5)` float32,
    each image's rows in their given order, padded with -1."""
    image_index = np.asarray(image_index, np.int64)
    order = np.argsort(image_index, kind="stable")
    index = image_index[order]
    counts = np.bincount(index, minlength=num_images)
    out = np.full((num_images, max(int(counts.max(initial=0)), 1), 5), -1, np.float32)
    slot = np.arange(len(index)) - (np.cumsum(counts) - counts)[index]
    out[index, slot] = np.asarray(rows, np.float32).reshape(-1, 5)[order]
    return out


def _check_classes(names, classes, where):
    """Index of each of `names` in `classes`; a name not there is one `DatasetError` at `where`."""
    lookup = {c: i for i, c in enumerate(classes)}
    unknown = [n for n in names if n not in lookup]
    if unknown:
        raise DatasetError(f"{where}: class {unknown[0]!r} is not among the run's classes ({', '.join(classes)}); "
                           "evaluate on data with the classes it was trained on")
    return np.array([lookup[n] for n in names], np.int64)


# --- COCO ----------------------------------------------------------------------------------------
def coco_files(root, split):
    """`(json, image folder)` of `split` ("train" or "val") of a COCO root: `annotations/instances_<name>.json`
    and `<name>/`, the training split the one whose name holds "train", the validation split "val"."""
    root = Path(root)
    files = sorted((root / "annotations").glob("instances_*.json"))
    found = {p.name[len("instances_"):-len(".json")]: p for p in files}
    word = SPLIT_WORDS[split]
    names = [n for n in found if word in n.lower()]
    if len(names) != 1:
        listed = ", ".join(p.name for p in found.values())
        raise DatasetError(f"{root / 'annotations'} holds {listed}: {'no' if not names else 'several'} split "
                           f"named with {word!r}; name one instances_{word}<...>.json")
    return found[names[0]], root / names[0]


def _load_coco(path):
    from pycocotools.coco import COCO

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(str(path)).dataset
    except (ValueError, UnicodeDecodeError, OSError) as e:
        raise DatasetError(f"{path} is not a COCO JSON file ({e.__class__.__name__}: {e})") from None
    except (KeyError, TypeError, AssertionError) as e:
        raise DatasetError(f"{path} is not a COCO instances file (missing or malformed {e}); it needs images, "
                           "annotations and categories") from None


def _records(path, records, what, keys):
    """Arrays of `keys` over the list `records` (the JSON's `what`), each missing key one line."""
    try:
        return [np.array([r[k] for r in records]) for k in keys]
    except (KeyError, TypeError) as e:
        bad = next(r for r in records if not isinstance(r, dict) or any(k not in r for k in keys))
        rid = bad.get("id", "?") if isinstance(bad, dict) else "?"
        raise DatasetError(f"{path}: {what} record id {rid} lacks {e}; COCO {what} records need "
                           f"{', '.join(keys)}") from None


def read_coco(root, split, classes=None):
    """One split of a COCO root (`coco_files`) as a `DetectionSet`, parsed by pycocotools.

    Categories (sorted by id) give the classes; `bbox` `[x, y, width, height]` in pixels becomes a corner box
    over the image's `width`/`height`; `iscrowd` boxes go to `ignored`; boxes of zero width or height are
    dropped (torchvision's reference does the same). Raises `DatasetError` naming the file and the record for
    a missing image file, an annotation of an unknown image or category id, or a box outside its image.
    """
    path, image_dir = coco_files(root, split)
    data = _load_coco(path)
    images, annotations, categories = (data.get(k) or [] for k in ("images", "annotations", "categories"))
    if not images:
        raise DatasetError(f"{path} lists no images")
    if not categories:
        raise DatasetError(f"{path} lists no categories; COCO names its classes there")
    cat_ids, cat_names = _records(path, sorted(categories, key=lambda c: c.get("id", 0)), "categories",
                                  ("id", "name"))
    names = tuple(str(n) for n in cat_names)
    if classes is not None and tuple(classes) != names:
        raise DatasetError(f"{path}: categories {', '.join(names)} differ from the run's classes "
                           f"{', '.join(classes)}; evaluate on data with the categories it was trained on")
    image_ids, files, widths, heights = _records(path, images, "images", ("id", "file_name", "width", "height"))
    files = np.array([str(f) for f in files])
    on_disk = {p.name for p in image_dir.iterdir()} if image_dir.is_dir() else set()
    missing = np.array([f not in on_disk and not (image_dir / f).is_file() for f in files], bool)
    if missing.any():
        i = int(np.argmax(missing))
        raise DatasetError(f"{path}: image id {image_ids[i]} ({files[i]}) not found in {image_dir}/ "
                           f"({int(missing.sum())} of {len(files)} images missing); put the images there")
    if annotations:
        ann_ids, ann_images, ann_cats, bbox = _records(path, annotations, "annotations",
                                                        ("id", "image_id", "category_id", "bbox"))
        crowd = np.array([bool(a.get("iscrowd", 0)) for a in annotations])
        bbox = bbox.astype(np.float64).reshape(-1, 4)
    else:
        ann_ids = ann_images = ann_cats = np.zeros(0, np.int64)
        crowd, bbox = np.zeros(0, bool), np.zeros((0, 4))
    image_row = {int(k): i for i, k in enumerate(image_ids)}
    cat_row = {int(k): i for i, k in enumerate(cat_ids)}
    rows = np.array([image_row.get(int(k), -1) for k in ann_images], np.int64)
    cats = np.array([cat_row.get(int(k), -1) for k in ann_cats], np.int64)
    for bad, what, value in ((rows < 0, "image_id", ann_images), (cats < 0, "category_id", ann_cats)):
        if bad.any():
            i = int(np.argmax(bad))
            raise DatasetError(f"{path}: annotation id {ann_ids[i]} has unknown {what} {value[i]} "
                               f"({int(bad.sum())} such annotations)")
    w, h = widths[rows].astype(np.float64), heights[rows].astype(np.float64)
    x0, y0, x1, y1 = bbox[:, 0], bbox[:, 1], bbox[:, 0] + bbox[:, 2], bbox[:, 1] + bbox[:, 3]
    outside = (x0 < 0) | (y0 < 0) | (x1 > w + 1e-3) | (y1 > h + 1e-3) | (bbox[:, 2] < 0) | (bbox[:, 3] < 0)
    if outside.any():
        i = int(np.argmax(outside))
        raise DatasetError(f"{path}: annotation id {ann_ids[i]} has bbox {bbox[i].tolist()} outside its "
                           f"{int(w[i])}x{int(h[i])} image {files[rows[i]]}")
    corners = np.column_stack([cats, x0 / w, y0 / h, np.minimum(x1, w) / w, np.minimum(y1, h) / h])
    kept = (bbox[:, 2] > 0) & (bbox[:, 3] > 0)
    n = len(files)
    return DetectionSet(np.array([str(image_dir / f) for f in files]),
                        pack_boxes(rows[kept & ~crowd], corners[kept & ~crowd], n),
                        np.column_stack([widths, heights]).astype(np.int64), names,
                        pack_boxes(rows[kept & crowd], corners[kept & crowd], n), "crowd")


def write_coco(root, split, files, sizes, labels, classes, ignored=None, images=None):
    """Write `root/annotations/instances_<split>.json` (and, with `images` (uint8 arrays), the images as
    `root/<split>/<files>`): the inverse of `read_coco` for labels and `ignored` (iscrowd 1) of the
    `DetectionSet` form. Category ids are 1, 2, ... in the order of `classes`."""
    root = Path(root)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    if images is not None:
        from PIL import Image

        (root / split).mkdir(parents=True, exist_ok=True)
        for name, image in zip(files, images):
            Image.fromarray(np.asarray(image, np.uint8)).save(root / split / name)
    sizes = np.asarray(sizes, np.float64)
    annotations = []
    for crowd, boxes in ((0, labels), (1, ignored)):
        if boxes is None:
            continue
        boxes = np.asarray(boxes, np.float64)
        i, j = np.nonzero(boxes[..., 0] >= 0)
        scale = np.concatenate([sizes[i], sizes[i]], axis=1)
        px = boxes[i, j, 1:] * scale
        xywh = np.column_stack([px[:, :2], px[:, 2:] - px[:, :2]])
        annotations += [{"image_id": int(k) + 1, "category_id": int(c) + 1, "bbox": [round(v, 4) for v in b],
                         "area": round(float(b[2] * b[3]), 4), "iscrowd": crowd}
                        for k, c, b in zip(i, boxes[i, j, 0], xywh.tolist())]
    for k, a in enumerate(annotations):
        a["id"] = k + 1
    data = {"images": [{"id": k + 1, "file_name": str(f), "width": int(w), "height": int(h)}
                       for k, (f, (w, h)) in enumerate(zip(files, sizes))],
            "annotations": annotations,
            "categories": [{"id": k + 1, "name": str(c), "supercategory": "object"} for k, c in enumerate(classes)]}
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))


# --- Pascal VOC ----------------------------------------------------------------------------------
def _voc_objects(xml_path, image_dir):
    """`(image path, (width, height), [(name, difficult, xmin, ymin, xmax, ymax)])` of one VOC XML file."""
    try:
        tree = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError) as e:
        raise DatasetError(f"{xml_path} is not a VOC annotation XML file ({e})") from None
    image = image_dir / (tree.findtext("filename") or f"{xml_path.stem}.jpg").strip()
    if not image.is_file():
        raise DatasetError(f"{xml_path}: image {image} not found")
    try:
        size = (int(tree.findtext("size/width")), int(tree.findtext("size/height")))
    except (TypeError, ValueError):
        size = (0, 0)
    if min(size) <= 0:  # some files leave <size> 0: the image says
        from PIL import Image

        with Image.open(image) as im:
            size = im.size
    objects = []
    for k, obj in enumerate(tree.iter("object"), start=1):
        try:
            box = [float(obj.findtext(f"bndbox/{t}")) for t in ("xmin", "ymin", "xmax", "ymax")]
            name = obj.findtext("name").strip()
        except (TypeError, ValueError, AttributeError):
            raise DatasetError(f"{xml_path} object {k}: needs <name> and <bndbox> with numeric xmin, ymin, xmax, "
                               "ymax") from None
        difficult = (obj.findtext("difficult") or "0").strip() == "1"
        objects.append((name, difficult, *box))
    return image, size, objects


def read_voc(root, split, classes=None):
    """One split (`ImageSets/Main/<split>.txt`) of a Pascal VOC root as a `DetectionSet`.

    VOC boxes are 1-based inclusive pixels: `xmin` becomes `xmin - 1` in corner form (so a box
    `xmin=1 .. xmax=width` spans the image). `difficult` objects go to `ignored`. Classes: `classes`, else
    the object names of the split, sorted. Raises `DatasetError` naming the file (and object) for a listed
    id without XML or image, a box outside its image, or a class outside `classes`.
    """
    root = Path(root)
    listing = root / "ImageSets" / "Main" / f"{split}.txt"
    if not listing.is_file():
        raise DatasetError(f"{listing} not found; a VOC detection set lists its {split} image ids there")
    try:
        ids = [line.split()[0] for line in listing.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as e:
        raise DatasetError(f"{listing} is not a text file ({e}); it lists one image id per line") from None
    if not ids:
        raise DatasetError(f"{listing} lists no images; it lists one image id per line")
    paths, sizes, owner, names, flags, boxes, where = [], [], [], [], [], [], []
    for i, image_id in enumerate(ids):
        xml = root / "Annotations" / f"{image_id}.xml"
        if not xml.is_file():
            raise DatasetError(f"{listing} lists {image_id}, but {xml} is not there")
        image, size, objects = _voc_objects(xml, root / "JPEGImages")
        paths.append(str(image))
        sizes.append(size)
        for k, (name, difficult, *box) in enumerate(objects, start=1):
            owner.append(i), names.append(name), flags.append(difficult), boxes.append(box), where.append((xml, k))
    sizes = np.array(sizes, np.int64)
    owner, flags = np.array(owner, np.int64), np.array(flags, bool)
    boxes = np.array(boxes, np.float64).reshape(-1, 4)
    w, h = sizes[owner, 0], sizes[owner, 1]
    bad = ((boxes[:, 0] < 1) | (boxes[:, 1] < 1) | (boxes[:, 2] > w) | (boxes[:, 3] > h)
           | (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]))
    if bad.any():
        k = int(np.argmax(bad))
        raise DatasetError(f"{where[k][0]} object {where[k][1]}: box ({', '.join(f'{v:g}' for v in boxes[k])}) is "
                           f"outside its {w[k]}x{h[k]} image (VOC boxes run from 1 to the width and height)")
    classes = tuple(classes) if classes is not None else tuple(sorted(set(names)))
    index = _check_classes(names, classes, listing) if names else np.zeros(0, np.int64)
    rows = np.column_stack([index, (boxes[:, 0] - 1) / w, (boxes[:, 1] - 1) / h, boxes[:, 2] / w, boxes[:, 3] / h])
    return DetectionSet(np.array(paths), pack_boxes(owner[~flags], rows[~flags], len(ids)), sizes, classes,
                        pack_boxes(owner[flags], rows[flags], len(ids)), "difficult")


def write_voc(root, split, ids, sizes, labels, classes, ignored=None, images=None):
    """Write `root/Annotations/<id>.xml` and `root/ImageSets/Main/<split>.txt` (and, with `images`, the
    JPEGs `root/JPEGImages/<id>.jpg`): the inverse of `read_voc` for labels and `ignored` (difficult 1) in
    the `DetectionSet` form whose corners are whole pixels."""
    root = Path(root)
    for sub in VOC_REQUIRED:
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i, (image_id, (w, h)) in enumerate(zip(ids, sizes)):
        if images is not None:
            from PIL import Image

            Image.fromarray(np.asarray(images[i], np.uint8)).save(root / "JPEGImages" / f"{image_id}.jpg", quality=92)
        rows = [(0, r) for r in labels[i] if r[0] >= 0] + [(1, r) for r in (ignored[i] if ignored is not None else [])
                                                             if r[0] >= 0]
        objects = "".join(
            f"<object><name>{classes[int(r[0])]}</name><difficult>{d}</difficult><bndbox>"
            f"<xmin>{round(r[1] * w) + 1}</xmin><ymin>{round(r[2] * h) + 1}</ymin>"
            f"<xmax>{round(r[3] * w)}</xmax><ymax>{round(r[4] * h)}</ymax></bndbox></object>" for d, r in rows)
        (root / "Annotations" / f"{image_id}.xml").write_text(
            f"<annotation><filename>{image_id}.jpg</filename><size><width>{w}</width><height>{h}</height>"
            f"<depth>3</depth></size>{objects}</annotation>")
    (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))


# --- TensorFlow Datasets ------------------------------------------------------------------------
# TFDS's `voc` label names (its features' `objects/label`), index order
VOC_DETECTION_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
                         "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
                         "tvmonitor")
TFDS_SPLITS = {"train": "train", "val": "validation"}


def tfds_voc(examples, root, split):
    """Write TFDS `voc` examples (`image` (H, W, 3) uint8, `objects`: `bbox` (n, 4) normalized (ymin, xmin,
    ymax, xmax), `label` (n,), `is_difficult` (n,)) once as a COCO root `root/<split>/` (PNG images,
    lossless; difficult objects as crowd-free ignored boxes), so `read_coco` gives the same `DetectionSet`
    as every other format. Returns that root."""
    from common.files import atomic_path

    split_root = Path(root) / split
    if (split_root / "DONE").exists():
        return split_root
    files, images, sizes, owner, rows, difficult = [], [], [], [], [], []
    for i, example in enumerate(examples):
        image, objects = example["image"], example["objects"]
        files.append(f"{i:06d}.png")
        images.append(image)
        sizes.append((image.shape[1], image.shape[0]))
        box = np.asarray(objects["bbox"], np.float64).reshape(-1, 4)
        if len(objects["label"]) != len(box):
            raise DatasetError(f"TFDS {TFDS_SPLITS[split]} example {i}: {len(box)} boxes but {len(objects['label'])} "
                               "labels; rebuild the dataset with `tfds build`")
        owner.append(np.full(len(box), i))
        rows.append(np.column_stack([objects["label"], box[:, 1], box[:, 0], box[:, 3], box[:, 2]]))
        difficult.append(np.asarray(objects.get("is_difficult", np.zeros(len(box))), bool).reshape(-1))
    if not files:
        raise DatasetError(f"the TFDS {TFDS_SPLITS[split]} split holds no examples")
    owner, rows, difficult = np.concatenate(owner), np.concatenate(rows), np.concatenate(difficult)
    with atomic_path(split_root, directory=True) as tmp:
        write_coco(tmp, split, files, sizes, pack_boxes(owner[~difficult], rows[~difficult], len(files)),
                   VOC_DETECTION_CLASSES, pack_boxes(owner[difficult], rows[difficult], len(files)), images)
        (tmp / "DONE").write_text("ok\n")
    return split_root


def class_names_file(run_dir):
    """`run_dir/classes.json`: the class names (index order) a run trained on named classes writes."""
    return Path(run_dir) / "classes.json"


def read_class_names(run_dir):
    """The class names of a run (`classes.json`, written by vision.ssd and vision.fcn), or None for a run on
    unnamed classes (the banana layout) or from before the file was written."""
    path = class_names_file(run_dir)
    if not path.exists():
        return None
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path} is corrupt ({e}); it holds the run's class names as a JSON list") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise DatasetError(f"{path} is not a JSON list of class names")
    return tuple(names)
