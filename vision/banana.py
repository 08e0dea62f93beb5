"""The banana-detection dataset (D2L 14.6): reader, offline generator and tf.data pipeline.

On-disk layout (the book's `banana-detection.zip`)::

    bananas_train/label.csv      img_name,label,xmin,ymin,xmax,ymax  (pixels)
    bananas_train/images/0.png   256 x 256 RGB
    bananas_val/...

The reader also accepts several rows per image (several objects), which the book's
data never has. `generate_bananas` writes the same layout offline: banana-like
crescents with random scale, aspect, bend, rotation, position and colour composited
onto varied textured backgrounds, seeded. Labels come out as `(images, objects, 5)`
float32 rows `(class, xmin, ymin, xmax, ymax)` in units of the image size, padded with
rows of -1.
"""
import csv
import json
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw, ImageFilter

from common.data import checked_image_size, demo_cache_dir, resolve_dataset
from common.errors import DatasetError
from common.files import atomic_path

URL = "http://d2l-data.s3-accelerate.amazonaws.com/banana-detection.zip"
SHA1 = "5de26c8fce5ccdea9f91267273464dc968d20d72"
NAME = "banana-detection"
# Bump whenever `generate_bananas` writes different bytes, so cached demo sets are not reused.
GENERATOR_VERSION = 1
SPLITS = {"train": "bananas_train", "val": "bananas_val"}
COLUMNS = ["img_name", "label", "xmin", "ymin", "xmax", "ymax"]
REQUIRED = [f"{d}/label.csv" for d in SPLITS.values()]
IMAGE_FORMATS = {"PNG", "JPEG", "GIF", "BMP"}  # what tf.io.decode_image reads


# --- reader ----------------------------------------------------------------------------
def read_bananas(root, split):
    """Read `root/bananas_<split>/label.csv` and check every row against its image.

    Returns `(paths, labels, sizes)`: image paths in first-appearance order, labels
    `(images, max_objects, 5)` float32 `(class, xmin, ymin, xmax, ymax)` divided by the
    image width/height, padded with -1 rows, and `(images, 2)` int (width, height).
    Raises `DatasetError` naming the file (and line) for a missing, empty or binary `label.csv`, a
    missing column, a non-numeric value, a missing, corrupt or truncated image (every image is
    checked whole, `checked_image_size`), or a box outside its image.
    """
    split_dir = Path(root) / SPLITS[split]
    label_file = split_dir / "label.csv"
    if not label_file.is_file():
        raise DatasetError(f"{label_file} not found; the banana-detection layout needs "
                           f"{SPLITS[split]}/label.csv and {SPLITS[split]}/images/")
    try:
        with open(label_file, newline="", encoding="utf-8-sig") as f:  # -sig: a spreadsheet's byte-order mark
            rows = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"{label_file} is not a CSV text file ({e}); it must start with the header "
                           f"{','.join(COLUMNS)}") from None
    if not rows or [c.strip() for c in rows[0]] != COLUMNS:
        got = ",".join(rows[0]) if rows else "nothing"
        raise DatasetError(f"{label_file}: header must be {','.join(COLUMNS)}, got {got}")
    objects, sizes = {}, {}
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(COLUMNS):
            raise DatasetError(f"{label_file} line {line}: expected {len(COLUMNS)} columns, got {len(row)}")
        name = row[0].strip()
        try:
            cls, *box = (float(v) for v in row[1:])
        except ValueError:
            raise DatasetError(f"{label_file} line {line}: non-numeric value in {','.join(row[1:])}") from None
        if cls < 0 or cls != int(cls):
            raise DatasetError(f"{label_file} line {line}: class {row[1]} must be an integer >= 0")
        if name not in sizes:
            image = split_dir / "images" / name
            if not image.is_file():
                raise DatasetError(f"{label_file} line {line}: image {image} not found")
            sizes[name] = checked_image_size(image, IMAGE_FORMATS, "banana image")
        width, height = sizes[name]
        xmin, ymin, xmax, ymax = box
        if not (0 <= xmin < xmax <= width and 0 <= ymin < ymax <= height):
            raise DatasetError(f"{label_file} line {line}: box ({xmin:g},{ymin:g},{xmax:g},{ymax:g}) is outside "
                               f"the {width}x{height} image {name} or empty")
        objects.setdefault(name, []).append([cls, xmin / width, ymin / height, xmax / width, ymax / height])
    if not objects:
        raise DatasetError(f"{label_file} lists no images")
    names = list(objects)
    labels = np.full((len(names), max(len(v) for v in objects.values()), 5), -1, np.float32)
    for i, name in enumerate(names):
        labels[i, :len(objects[name])] = objects[name]
    paths = np.array([str(split_dir / "images" / n) for n in names])
    return paths, labels, np.array([sizes[n] for n in names])


def banana_root(data_dir=None, source="generated", num_train=1000, num_val=100, seed=0, max_objects=1, size=256):
    """The directory holding `bananas_train/` and `bananas_val/`.

    `data_dir` given: it must hold the layout. Otherwise `source="download"` resolves the
    book's archive (cache, or download with SHA-1 check; offline one clear line) and
    `source="generated"` returns the offline generated set in the cache, writing it
    first if absent.
    """
    if data_dir is not None or source == "download":
        return resolve_dataset(NAME, required=REQUIRED, url=URL, sha1=SHA1, data_dir=data_dir,
                               hint="--source generated (the offline generated set) or --demo")
    name = f"bananas-{num_train}-{num_val}-obj{max_objects}-seed{seed}-{size}px"
    return generate_bananas(demo_cache_dir("vision-demo", name, version=GENERATOR_VERSION), num_train, num_val,
                            seed=seed, max_objects=max_objects, size=size)


# --- offline generator -----------------------------------------------------------------
def _background(rng, size):
    """A textured RGB background: smooth noise, stripes, checks or blobs, in random colours."""
    kind = rng.integers(4)
    c1, c2 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    yy, xx = np.mgrid[0:size, 0:size] / size
    if kind == 0:  # smooth noise
        low = rng.uniform(0, 1, (rng.integers(3, 9),) * 2)
        t = np.asarray(Image.fromarray((low * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC)) / 255
    elif kind == 1:  # stripes at a random angle and frequency
        angle, freq = rng.uniform(0, np.pi), rng.uniform(3, 20)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)))
    elif kind == 2:  # checkerboard
        n = rng.integers(3, 12)
        t = ((np.floor(xx * n) + np.floor(yy * n)) % 2).astype(float)
    else:  # soft blobs
        t = np.zeros((size, size))
        for cx, cy, r in rng.uniform([0, 0, 0.05], [1, 1, 0.3], (8, 3)):
            t += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
        t /= t.max()
    img = c1 + t[..., None] * (c2 - c1) + rng.normal(0, 8, (size, size, 3))
    return np.clip(img, 0, 255)


def _banana_polygon(rng, size):
    """Outline of a banana-like crescent (pixels), with random bend, length, width and angle."""
    t = np.linspace(-1, 1, 24)
    bend = rng.uniform(0.4, 1.2)
    center = np.stack([np.sin(bend * t) / bend, (1 - np.cos(bend * t)) / bend], axis=-1)
    normal = np.stack([-np.sin(bend * t), np.cos(bend * t)], axis=-1)
    half_width = rng.uniform(0.15, 0.3) * (1 - t ** 2) ** 0.6 + 0.03
    outline = np.concatenate([center + normal * half_width[:, None], (center - normal * half_width[:, None])[::-1]])
    length = rng.uniform(0.12, 0.3) * size
    outline = outline * [length, length * rng.uniform(0.7, 1.3)]
    a = rng.uniform(0, 2 * np.pi)
    return outline @ np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])


def _paste_banana(rng, img, taken):
    """Draw one banana onto `img` (float HxWx3) away from boxes in `taken`; return its box."""
    size = img.shape[0]
    for _ in range(20):
        poly = _banana_polygon(rng, size)
        lo, hi = poly.min(0), poly.max(0)
        shift = rng.uniform(2 - lo, size - 2 - hi)
        poly = poly + shift
        box = np.concatenate([np.floor(poly.min(0)), np.ceil(poly.max(0))])
        if not taken or all(_overlap(box, b) < 0.2 for b in taken):
            break
    mask_img = Image.new("L", (size, size))
    ImageDraw.Draw(mask_img).polygon([tuple(p) for p in poly], fill=255)
    soft = np.asarray(mask_img.filter(ImageFilter.GaussianBlur(1.0)), np.float32) / 255
    inner = np.asarray(mask_img.filter(ImageFilter.GaussianBlur(size / 40)), np.float32) / 255
    hue = np.array([235, 200, 40]) + rng.uniform([-40, -60, -30], [20, 40, 60])
    colour = hue * rng.uniform(0.6, 1.1) * (0.55 + 0.45 * inner[..., None])
    img[:] = img * (1 - soft[..., None]) + np.clip(colour, 0, 255) * soft[..., None]
    ys, xs = np.nonzero(np.asarray(mask_img))
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def _overlap(a, b):
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))


def generate_bananas(root, num_train=1000, num_val=100, seed=0, max_objects=1, size=256):
    """Write a banana-detection set in the book's layout under `root` and return `root`.

    Each image (`size` x `size` PNG) gets 1..`max_objects` bananas on a textured
    background; label.csv has one row per banana with its tight pixel box. Seeded and
    written once (to a temporary directory renamed into place); an existing complete set
    is returned as is.
    """
    root = Path(root)
    if (root / "DONE").exists():
        return root
    with atomic_path(root, directory=True) as tmp:
        for split, count, split_seed in (("train", num_train, seed), ("val", num_val, seed + 10_000)):
            rng = np.random.default_rng(split_seed)
            images = tmp / SPLITS[split] / "images"
            images.mkdir(parents=True)
            rows = []
            for i in range(count):
                img = _background(rng, size)
                taken = []
                for _ in range(rng.integers(1, max_objects + 1)):
                    taken.append(_paste_banana(rng, img, taken))
                    rows.append([f"{i}.png", 0, *taken[-1]])
                Image.fromarray(img.astype(np.uint8)).save(images / f"{i}.png", compress_level=1)
            with open(tmp / SPLITS[split] / "label.csv", "w", newline="") as f:
                csv.writer(f).writerows([COLUMNS, *rows])
        (tmp / "DONE").write_text(json.dumps({"seed": seed, "train": num_train, "val": num_val,
                                              "max_objects": max_objects, "size": size}))
    return root


# --- tf.data pipeline --------------------------------------------------------------------
def resize_image(image, image_size):
    """A uint8 image `(h, w, 3)` (or a batch) resized to `(image_size, image_size, 3)`: bilinear, rounded back to
    uint8. The one resize of the detector's input, in training, `predict` and the exported model alike."""
    return tf.cast(tf.round(tf.image.resize(image, [image_size, image_size])), tf.uint8)


def decoded_dataset(paths, labels, sizes, image_size):
    """Cached dataset of `(uint8 image (image_size, image_size, 3), labels (objects, 5))`.

    PNG/JPEG decoding (and resizing, only when an image is not already `image_size`
    square) runs in parallel once; later epochs read the in-memory cache.
    """
    resize = bool(np.any(np.asarray(sizes) != image_size))

    def load(path, label):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        if resize:
            image = resize_image(image, image_size)
        image.set_shape([image_size, image_size, 3])
        return image, label

    return (tf.data.Dataset.from_tensor_slices((paths, labels))
            .map(load, num_parallel_calls=tf.data.AUTOTUNE).cache())


def flip_boxes(labels):
    """Mirror label rows `(..., 5)` left-right: x -> 1 - x; padding rows stay -1."""
    cls, xmin, ymin, xmax, ymax = tf.unstack(labels, axis=-1)
    flipped = tf.stack([cls, 1 - xmax, ymin, 1 - xmin, ymax], axis=-1)
    return tf.where((cls >= 0)[..., None], flipped, labels)


def batches(decoded, batch_size, *, shuffle_seed=None, flip=False, count=None):
    """Batch a `decoded_dataset`, optionally shuffled and randomly flipped, prefetched.

    `shuffle_seed` (`common.data.epoch_seed(seed, epoch)`) seeds both the order and the flips
    (stateless, per position), so an epoch's batches are reproducible. `count` is the
    number of examples (the shuffle buffer).
    """
    ds = decoded
    if shuffle_seed is not None:
        ds = ds.shuffle(count or 10_000, seed=shuffle_seed, reshuffle_each_iteration=False)
    if flip:
        def maybe_flip(index, example):
            image, label = example
            coin = tf.random.stateless_uniform([], seed=tf.stack([tf.cast(shuffle_seed or 0, tf.int64), index]))
            return tf.cond(coin < 0.5, lambda: (image[:, ::-1], flip_boxes(label)), lambda: (image, label))

        ds = ds.enumerate().map(maybe_flip, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
