"""Pascal VOC2012 semantic segmentation: reader, tf.data pipelines, offline generator.

The reader takes the real layout, `VOCdevkit/VOC2012/{JPEGImages/*.jpg,
SegmentationClass/*.png, ImageSets/Segmentation/{train,val}.txt}`, whose labels are
palette PNGs: pixel values are class indices 0-20 (0 = background) and 255 marks the
object boundaries that scoring ignores. `generate_shapes_voc` writes a seeded offline
set in exactly that layout (palette PNGs with 255 boundaries, JPEG images), so the
same reader and pipeline serve both.

Class names: a VOC directory does not record what its indices mean, so a generated set
writes `VOC2012/class_names.txt` (next to `JPEGImages/`), one name per line, the name of
index 0 ("background") first; `class_names` reads it, and gives the 21 VOC names where it
is absent (a real VOCdevkit has none).

Training uses the book's random crops (not resizing): images smaller than the crop are
dropped, and the number dropped is reported; or, with `scale`, random resized crops
(scale augmentation, padding small images) and optional colour jitter. The pipelines import
TensorFlow when they are built, so the reader and the generators (`python -m
vision.photo_segmentation`) load without it.
"""
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from common.data import checked_image_size, demo_cache_dir, epoch_seed, resolve_dataset
from common.errors import DatasetError
from common.files import atomic_path

VOC_URL = "http://d2l-data.s3-accelerate.amazonaws.com/VOCtrainval_11-May-2012.tar"
VOC_SHA1 = "4e443f8a2eca6b1dac8a6c57641b67dd40621a49"
VOC_REQUIRED = ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation")

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "potted plant", "sheep", "sofa",
               "train", "tv/monitor")
NUM_CLASSES = len(VOC_CLASSES)
IGNORE_INDEX = 255
CLASS_NAMES_FILE = "class_names.txt"
# Version of what `generate_shapes_voc` writes, part of the `shapes_voc` cache folder name: bump it
# whenever the bytes it writes change (drawing, colours, sizes, file layout), so cached sets from
# the older code are not reused. `draw_shape`, `SHAPE_HUES`, `hue_rgb` and `write_label` also feed
# vision.photo_segmentation: bump its GENERATOR_VERSION too when they change.
GENERATOR_VERSION = 1


def voc_palette():
    """The 256-entry VOC colour palette as a (256, 3) uint8 array (index 255 is (224, 224, 192)).

    Entry c spreads the bits of c over the channels: bit 3j goes to red, 3j+1 to green,
    3j+2 to blue, each at bit 7-j (the devkit's `labelcolormap`).
    """
    c = np.arange(256)
    palette = np.zeros((256, 3), np.int64)
    for j in range(8):
        for channel in range(3):
            palette[:, channel] |= ((c >> (3 * j + channel)) & 1) << (7 - j)
    return palette.astype(np.uint8)


VOC_COLORMAP = voc_palette()[:NUM_CLASSES]


def read_label(path):
    """Class indices (H, W) uint8 of one palette (or greyscale index) PNG."""
    with Image.open(path) as img:
        if img.mode not in ("P", "L"):
            raise DatasetError(f"{path}: label is a {img.mode} image; expected a palette PNG of class indices")
        return np.asarray(img, dtype=np.uint8)


def write_label(path, label):
    """Save class indices (H, W) uint8 as a palette PNG with the VOC palette."""
    img = Image.fromarray(np.asarray(label, np.uint8), mode="P")
    img.putpalette(voc_palette().ravel().tolist())
    img.save(path)


def write_class_names(root, names):
    """Write `names` (index 0 first) to `root/class_names.txt`, one per line, atomically."""
    with atomic_path(Path(root) / CLASS_NAMES_FILE) as tmp:
        tmp.write_text("".join(f"{name}\n" for name in names), encoding="utf-8")


def read_class_list(path, max_classes, fix, encoding="utf-8"):
    """The names in the text file `path`, one per line in index order (trailing blank lines ignored): 2 to
    `max_classes` distinct non-empty names; a malformed file raises one `DatasetError` naming it, the line
    and `fix`."""
    try:
        names = [line.strip() for line in Path(path).read_text(encoding=encoding).splitlines()]
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read {path} ({e}); {fix}") from None
    while names and not names[-1]:
        names.pop()
    if not 2 <= len(names) <= max_classes:
        raise DatasetError(f"{path} names {len(names)} classes; {fix}")
    if "" in names:
        raise DatasetError(f"{path}: line {names.index('') + 1} is empty; {fix}")
    repeated = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if repeated is not None:
        raise DatasetError(f"{path} names {repeated!r} twice (lines {names.index(repeated) + 1} and "
                           f"{names.index(repeated, names.index(repeated) + 1) + 1}); {fix}")
    return tuple(names)


def class_names(root):
    """The names of class indices 0, 1, ... of the VOC2012 directory `root`, as a tuple.

    From `root/class_names.txt` when it exists (one name per line, "background" first, 2-21
    distinct names; trailing blank lines ignored), else `VOC_CLASSES`. A malformed file
    raises `DatasetError` naming the file and the fix.
    """
    path = Path(root) / CLASS_NAMES_FILE
    if not path.exists():
        return VOC_CLASSES
    fix = (f"the model has {NUM_CLASSES} outputs: write one class name per line, background first, "
           f"2-{NUM_CLASSES} lines, or delete it to use the {NUM_CLASSES} VOC names")
    names = read_class_list(path, NUM_CLASSES, fix)
    if names[0] != "background":
        raise DatasetError(f"{path}: the first name is {names[0]!r}, but index 0 is the background; {fix}")
    return names


def voc_root(data_dir=None):
    """The `VOC2012` directory: under `data_dir`, or the cached/downloaded devkit archive."""
    return resolve_dataset("voc2012", required=list(VOC_REQUIRED), url=VOC_URL, sha1=VOC_SHA1,
                           data_dir=data_dir, hint="--dataset shapes (offline generated VOC-format data) or --demo")


def read_split(root, split):
    """Image and label paths of `ImageSets/Segmentation/<split>.txt`, checked to exist."""
    root = Path(root)
    listing = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not listing.exists():
        raise DatasetError(f"{listing} not found; a VOC2012 devkit lists its {split} images there")
    try:
        names = [line.strip() for line in listing.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as e:
        raise DatasetError(f"{listing} is not a text file ({e}); it must list one image name per line, "
                           "without extension") from None
    if not names:
        raise DatasetError(f"{listing} lists no images; it must list one image name per line, without extension")
    images = [root / "JPEGImages" / f"{n}.jpg" for n in names]
    labels = [root / "SegmentationClass" / f"{n}.png" for n in names]
    for path in (*images, *labels):
        if not path.exists():
            raise DatasetError(f"{path} not found, but {listing} lists it")
    return images, labels


def _check_pair(pair, num_classes=NUM_CLASSES, names_file=None, formats=("JPEG",)):
    image, label = pair
    size = checked_image_size(image, set(formats), "VOC image" if formats == ("JPEG",) else "image")
    try:
        values = read_label(label)
    except (OSError, SyntaxError, ValueError) as e:
        reason = str(e).replace(str(label), "").strip(" '") or type(e).__name__
        raise DatasetError(f"{label} is not a readable label PNG ({reason}); replace it with an intact copy") from None
    if values.shape != (size[1], size[0]):
        raise DatasetError(f"{label} is {values.shape[1]}x{values.shape[0]} but {image} is {size[0]}x{size[1]}")
    bad = np.unique(values[(values >= num_classes) & (values != IGNORE_INDEX)])
    if bad.size:
        index = int(bad[0])
        if names_file is None:
            raise DatasetError(f"{label} has unknown class index {index}; VOC labels are 0-{num_classes - 1} "
                               f"and {IGNORE_INDEX} (boundary)")
        if index < NUM_CLASSES:
            raise DatasetError(f"{label} has class index {index}, but {names_file} names only {num_classes} "
                               f"classes (0-{num_classes - 1}); add the missing names to it")
        raise DatasetError(f"{label} has unknown class index {index}; labels are 0-{num_classes - 1} (the classes "
                           f"{names_file} names) and {IGNORE_INDEX} (boundary)")
    return values.shape


def check_split(images, labels, workers=4, num_classes=NUM_CLASSES, names_file=None, formats=("JPEG",)):
    """Check every image and label decodes whole (`checked_image_size`: the images are JPEG, or one of
    `formats`), each label matches its image's size and holds only 0..`num_classes` - 1 and 255.

    `num_classes` is the number of names of the set (`class_names`), and `names_file` the
    class-names file they came from, if any (named in the error). Returns the (H, W) of each
    pair as an (N, 2) int array. Raises `DatasetError` naming the first bad file.
    """
    check = lambda pair: _check_pair(pair, num_classes, names_file, formats)
    with ThreadPoolExecutor(workers) as pool:
        return np.array(list(pool.map(check, zip(images, labels))), np.int64).reshape(-1, 2)


def filter_by_size(images, labels, sizes, crop, split="train"):
    """Keep the pairs at least `crop` = (h, w) large; print how many were dropped to stderr."""
    keep = (sizes[:, 0] >= crop[0]) & (sizes[:, 1] >= crop[1])
    dropped = int((~keep).sum())
    if dropped:
        print(f"{split}: dropped {dropped} of {len(images)} images smaller than the {crop[0]}x{crop[1]} crop",
              file=sys.stderr)
    if not keep.any():
        raise DatasetError(f"every {split} image is smaller than the {crop[0]}x{crop[1]} crop; choose a smaller --crop")
    return [p for p, k in zip(images, keep) if k], [p for p, k in zip(labels, keep) if k]


def _load_pair(image_path, label_path):
    import tensorflow as tf

    image = tf.io.decode_image(tf.io.read_file(image_path), channels=3, expand_animations=False)  # JPEG or PNG
    label = tf.numpy_function(lambda p: read_label(p.decode()), [label_path], tf.uint8, stateful=False)
    label = tf.reshape(label, tf.shape(image)[:2])
    return image, label


def _colour_jitter(image, strength, key):
    """Brightness, contrast and saturation each scaled by a factor in [1 - strength, 1 + strength]
    (in that order, stateless from `key`), on float pixels 0-255; clipped to 0-255."""
    import tensorflow as tf

    factor = lambda k: tf.random.stateless_uniform((), seed=key + k, minval=1 - strength, maxval=1 + strength)
    image = image * factor(3)
    grey = tf.reduce_mean(tf.image.rgb_to_grayscale(image))
    image = (image - grey) * factor(4) + grey
    image = tf.image.adjust_saturation(tf.clip_by_value(image, 0, 255) / 255, factor(5)) * 255
    return tf.clip_by_value(image, 0, 255)


def _rescale(image, label, scale, crop, key):
    """`image` and `label` resized by a log-uniform factor in `scale` = (low, high) (bilinear pixels,
    nearest labels), then padded at the bottom/right (pixels 0, labels 255) to at least `crop`."""
    import tensorflow as tf

    low, high = np.log(scale[0]), np.log(scale[1])
    factor = tf.exp(tf.random.stateless_uniform((), seed=key + 2, minval=low, maxval=high))
    size = tf.cast(tf.round(tf.cast(tf.shape(image)[:2], tf.float32) * factor), tf.int32)
    image = tf.image.resize(image, size, method="bilinear")
    label = tf.image.resize(label[..., None], size, method="nearest")[..., 0]
    pad = [[0, tf.maximum(crop[0] - size[0], 0)], [0, tf.maximum(crop[1] - size[1], 0)]]
    return tf.pad(image, pad + [[0, 0]]), tf.pad(label, pad, constant_values=IGNORE_INDEX)


def train_dataset(images, labels, crop, batch_size, seed=0, epoch=0, scale=None, jitter=0.0):
    """Batches of random `crop` = (h, w) crops with random horizontal flips, for one epoch.

    Yields (images (B, h, w, 3) float32 pixels 0-255, labels (B, h, w) int32 with 255
    kept for the loss to ignore). With `scale` = (low, high), each image is first resized by
    a log-uniform random factor in that range and padded (labels 255) up to `crop` (random
    resized crops, scale augmentation); without it, every image must be at least `crop` (the
    book's crops). `jitter` > 0 adds colour jitter (`_colour_jitter`). Shuffle, scale, crop,
    flip and jitter are stateless functions of (`common.data.epoch_seed(seed, epoch)`, index),
    so an epoch is identical however it is parallelised and when resumed. The last partial
    batch is dropped.
    """
    import tensorflow as tf

    h, w = crop
    n = len(images)
    ds = tf.data.Dataset.from_tensor_slices(([str(p) for p in images], [str(p) for p in labels]))
    this_epoch = epoch_seed(seed, epoch)
    ds = ds.shuffle(n, seed=this_epoch, reshuffle_each_iteration=False).enumerate()

    def load(index, paths):
        image, label = _load_pair(*paths)
        image, label = tf.cast(image, tf.float32), tf.cast(label, tf.float32)
        key = tf.stack([tf.constant(this_epoch, tf.int64), index])
        if scale is not None:
            image, label = _rescale(image, label, scale, crop, key)
        stacked = tf.concat([image, label[..., None]], axis=-1)
        stacked = tf.image.stateless_random_crop(stacked, (h, w, 4), seed=key)
        flip = tf.random.stateless_uniform((), seed=key + 1) < 0.5
        stacked = tf.cond(flip, lambda: tf.reverse(stacked, axis=[1]), lambda: stacked)
        image = _colour_jitter(stacked[..., :3], jitter, key) if jitter else stacked[..., :3]
        return image, tf.cast(stacked[..., 3], tf.int32)

    ds = ds.map(lambda i, paths: load(i, paths), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def padded_size(sizes, multiple=32):
    """The smallest (H, W), multiples of `multiple`, that holds every (h, w) in `sizes`."""
    top = np.asarray(sizes).max(axis=0)
    return tuple(int(-(-v // multiple) * multiple) for v in top)


PAD_LABEL = 254  # no VOC class: a `label_pad` that tells the padding of eval batches from void (255)


def eval_dataset(images, labels, batch_size, pad_to, label_pad=IGNORE_INDEX):
    """Whole images, padded at the bottom/right to `pad_to` = (H, W); label padding is `label_pad`
    (255, or `PAD_LABEL` where the caller must tell padding from VOC's 255 boundaries).

    Yields (images (B, H, W, 3) float32, labels (B, H, W) int32), in listing order.
    """
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(([str(p) for p in images], [str(p) for p in labels]))
    ds = ds.map(lambda i, l: _load_pair(i, l), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(lambda i, l: (tf.cast(i, tf.float32), tf.cast(l, tf.int32)))
    return ds.padded_batch(batch_size, padded_shapes=((*pad_to, 3), pad_to),
                           padding_values=(0.0, label_pad)).prefetch(tf.data.AUTOTUNE)


# --- offline generators (this one and vision.photo_segmentation) ---------------------
SHAPE_CLASSES = {"circle": 1, "square": 2, "triangle": 3, "cross": 4, "star": 5}
SHAPE_NAMES = ("background", *sorted(SHAPE_CLASSES, key=SHAPE_CLASSES.get))  # what class_names.txt holds
SHAPE_HUES = {"circle": 0.0, "square": 0.2, "triangle": 0.4, "cross": 0.6, "star": 0.8}


def _polygon(shape, cx, cy, r, angle):
    """Vertices of a regular shape of circumradius r centred on (cx, cy), rotated by angle."""
    if shape == "square":
        t, radii = np.arange(4) * np.pi / 2 + np.pi / 4, np.full(4, r)
    elif shape == "triangle":
        t, radii = np.arange(3) * 2 * np.pi / 3, np.full(3, r)
    elif shape == "star":
        t, radii = np.arange(10) * np.pi / 5, np.tile([r, 0.45 * r], 5)
    else:  # cross: a plus sign with arms of half-width 0.33 r
        a = 0.33
        xy = np.array([(a, 1), (a, a), (1, a), (1, -a), (a, -a), (a, -1),
                       (-a, -1), (-a, -a), (-1, -a), (-1, a), (-a, a), (-a, 1)]) * r
        t, radii = np.arctan2(xy[:, 1], xy[:, 0]), np.hypot(xy[:, 0], xy[:, 1])
    t = t + angle
    return list(zip(cx + radii * np.cos(t), cy + radii * np.sin(t)))


def draw_shape(draw, shape, cx, cy, r, angle, scale=1, **style):
    """Draw one of `SHAPE_CLASSES` (circumradius `r` around (cx, cy), rotated by `angle`; a circle
    ignores it) with a PIL `ImageDraw`, every coordinate multiplied by `scale` (for supersampling);
    `style` is PIL's (fill, outline, width)."""
    if shape == "circle":
        draw.ellipse([scale * (cx - r), scale * (cy - r), scale * (cx + r), scale * (cy + r)], **style)
    else:
        draw.polygon([(scale * x, scale * y) for x, y in _polygon(shape, cx, cy, r, angle)], **style)


def hue_rgb(hue, saturation=1.0, value=1.0):
    """The RGB colour (3,) float64 in [0, 1] of an HSV colour, `hue` in [0, 1): the pure hue's piecewise
    linear channels, moved towards white by 1 - `saturation` and scaled by `value` (the pure hue itself,
    bit for bit, when both are 1)."""
    rgb = np.clip(np.abs((hue * 6 + np.array([0.0, 4.0, 2.0])) % 6 - 3) - 1, 0, 1)
    return rgb if saturation == 1 and value == 1 else value * (1 - saturation * (1 - rgb))


def _background(rng, h, w):
    """A textured background: two muted colours mixed by smooth waves, stripes or checks, plus noise."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = rng.integers(3)
    if kind == 0:
        mix = sum(np.sin(rng.uniform(0.02, 0.12) * (np.cos(a) * xx + np.sin(a) * yy) + rng.uniform(0, 6.3))
                  for a in rng.uniform(0, np.pi, 3)) / 6 + 0.5
    elif kind == 1:
        a = rng.uniform(0, np.pi)
        mix = (np.sin(rng.uniform(0.15, 0.5) * (np.cos(a) * xx + np.sin(a) * yy)) > 0).astype(np.float32)
    else:
        period = rng.integers(8, 24)
        mix = ((xx // period + yy // period) % 2).astype(np.float32)
    grey = rng.uniform(40, 215, (2, 1))
    c0, c1 = grey + rng.uniform(-35, 35, (2, 3))  # muted colours: shapes stand out by hue
    image = c0 + (c1 - c0) * mix[..., None] * rng.uniform(0.3, 1.0)
    return image + rng.normal(0, 12, (h, w, 3))


def _draw_sample(rng, h, w, radius=(0.25, 0.45)):
    """One image (h, w, 3) uint8 and its label (h, w) uint8 with 1-3 shapes and 255 outlines.

    Shape circumradii are drawn uniformly from `radius` times the shorter side.
    """
    image = Image.fromarray(np.clip(_background(rng, h, w), 0, 255).astype(np.uint8))
    label = Image.new("L", (w, h), 0)
    draw_image, draw_label = ImageDraw.Draw(image), ImageDraw.Draw(label)
    names = list(SHAPE_CLASSES)
    for _ in range(rng.integers(1, 4)):
        shape = names[rng.integers(len(names))]
        r = rng.uniform(*radius) * min(h, w)
        cx, cy = rng.uniform(0.1 * w, 0.9 * w), rng.uniform(0.1 * h, 0.9 * h)
        hue = (SHAPE_HUES[shape] + rng.normal(0, 0.03)) % 1.0
        colour = tuple(int(255 * c) for c in hue_rgb(hue, rng.uniform(0.55, 1.0), rng.uniform(0.5, 1.0)))
        angle = 0.0 if shape == "circle" else rng.uniform(0, 2 * np.pi)
        draw_shape(draw_image, shape, cx, cy, r, angle, fill=colour)
        draw_shape(draw_label, shape, cx, cy, r, angle, fill=SHAPE_CLASSES[shape], outline=IGNORE_INDEX, width=2)
    pixels = np.asarray(image, np.float32) + rng.normal(0, 6, (h, w, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8), np.asarray(label, np.uint8)


def generate_shapes_voc(root, num_train=600, num_val=100, size=(128, 160), seed=0):
    """Write a VOC2012-format segmentation set of coloured shapes on textured backgrounds.

    Layout under `root`: `VOCdevkit/VOC2012/{JPEGImages/*.jpg, SegmentationClass/*.png,
    ImageSets/Segmentation/{train,val}.txt}`. Each image is h x w with h, w drawn
    uniformly from `size` = (low, high) pixels and holds 1-3 shapes (circle, square,
    triangle, cross, star = VOC class indices 1-5; hue loosely tied to the shape;
    circumradius 0.25-0.45 of the shorter side, large enough for FCN-32s's stride-32
    output to resolve; random position, rotation, saturation and brightness; later
    shapes occlude earlier ones); labels carry a 2-pixel 255 boundary, as VOC's do; `class_names.txt`
    names the six classes (`SHAPE_NAMES`). Seeded: the same arguments write the same files. Returns
    the `VOC2012` directory.
    """
    voc = Path(root) / "VOCdevkit" / "VOC2012"
    for sub in VOC_REQUIRED:
        (voc / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = {"train": [f"shapes_{i:06d}" for i in range(num_train)],
             "val": [f"shapes_{i:06d}" for i in range(num_train, num_train + num_val)]}
    for name in names["train"] + names["val"]:
        h, w = rng.integers(size[0], size[1] + 1, 2)
        image, label = _draw_sample(rng, int(h), int(w))
        Image.fromarray(image).save(voc / "JPEGImages" / f"{name}.jpg", quality=92)
        write_label(voc / "SegmentationClass" / f"{name}.png", label)
    for split, split_names in names.items():
        (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(split_names) + "\n")
    write_class_names(voc, SHAPE_NAMES)
    return voc


def cached_shape_set(root, generate, message):
    """The `VOC2012` directory of a generated set of the shape classes (`SHAPE_NAMES`) cached at `root`:
    `generate(tmp)` writes it once into a temporary directory renamed into place when complete
    (marked by a `DONE` file).

    A set cached before the generators wrote `class_names.txt` gets the file added: its classes
    are the same `SHAPE_NAMES`, so the images need not be drawn again (nor the cache key change).
    """
    if not (root / "DONE").exists():
        print(message, file=sys.stderr)
        with atomic_path(root, directory=True) as tmp:
            generate(tmp)
            (tmp / "DONE").write_text("ok\n")
    voc = root / "VOCdevkit" / "VOC2012"
    if not (voc / CLASS_NAMES_FILE).exists():
        write_class_names(voc, SHAPE_NAMES)
    return voc


def shapes_voc(num_train=600, num_val=100, size=(128, 160), seed=0):
    """The offline shapes set for these arguments (`seed` is the data seed), generated into the
    cache once, in a temporary directory renamed into place when complete."""
    root = demo_cache_dir("vision-demo", f"shapes-voc-{num_train}-{num_val}-{size[0]}-{size[1]}-seed{seed}",
                          version=GENERATOR_VERSION)
    return cached_shape_set(root, lambda tmp: generate_shapes_voc(tmp, num_train, num_val, size, seed),
                            f"generating {num_train}+{num_val} VOC-format shape images into {root}")
