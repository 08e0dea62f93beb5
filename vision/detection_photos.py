"""A multi-class detection set on real photographs, offline and seeded, written in COCO or VOC layout.

Backgrounds are random crops of the photographs that ship with the installed packages
(`vision.photo_segmentation.sample_photographs`); onto each go 1..`max_objects` sprites of the
`kinds` (default: banana, the book's crescent of `vision.banana`, and star, `vision.voc`'s
five-pointed polygon), each of random size (12-30% of the side), rotation and colour, with soft
edges, placed so that no two overlap more than 20% of the smaller. Boxes are the sprites' tight
whole-pixel boxes. `write_photo_detection` writes a set in COCO's layout (`annotations/
instances_{train,val}.json`, `train/`, `val/`, PNG) or VOC's (`Annotations/`, `JPEGImages/`,
`ImageSets/Main/`, JPEG), which `vision.detection_data` reads:

    python -m vision.detection_photos --out DIR [--format coco|voc] [--train 600] [--val 100] [--size 128]
    python -m vision.ssd train --data-dir DIR
"""
import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from vision import detection_data, voc
from vision.photo_segmentation import _random_crop, sample_photographs

KINDS = ("banana", "star")
_HUES = {"banana": (235, 200, 40), "star": (70, 120, 230), "circle": (220, 60, 60)}


def _outline(rng, kind, size):
    """A sprite's outline (k, 2) pixels around the origin."""
    if kind == "banana":
        from vision.banana import _banana_polygon  # the book's crescent (vision.banana loads TensorFlow)

        return _banana_polygon(rng, size)
    shape = "star" if kind == "star" else "circle"
    r = rng.uniform(0.06, 0.15) * size
    if shape == "circle":
        t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        return np.stack([np.cos(t), np.sin(t)], axis=-1) * r
    return np.array(voc._polygon(shape, 0.0, 0.0, r, rng.uniform(0, 2 * np.pi)))


def _overlap(a, b):
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))


def draw_image(rng, photos, size, kinds=KINDS, max_objects=3):
    """One `(size, size, 3)` uint8 image and its rows `(objects, 5)` `(class, xmin, ymin, xmax, ymax)` in
    pixels (class = index into `kinds`)."""
    image = _random_crop(rng, photos[rng.integers(len(photos))], size, size, rng.uniform(0.35, 1.0))
    rows = []
    for _ in range(rng.integers(1, max_objects + 1)):
        cls = int(rng.integers(len(kinds)))
        for _ in range(20):
            poly = _outline(rng, kinds[cls], size)
            lo, hi = poly.min(0), poly.max(0)
            poly = poly + rng.uniform(2 - lo, size - 2 - hi)
            box = np.concatenate([np.floor(poly.min(0)), np.ceil(poly.max(0))])
            if all(_overlap(box, r[1:]) < 0.2 for r in rows):
                break
        mask = Image.new("L", (size, size))
        ImageDraw.Draw(mask).polygon([tuple(p) for p in poly], fill=255)
        ys, xs = np.nonzero(np.asarray(mask))
        if len(xs) == 0:
            continue
        soft = np.asarray(mask.filter(ImageFilter.GaussianBlur(0.8)), np.float32)[..., None] / 255
        shade = np.asarray(mask.filter(ImageFilter.GaussianBlur(size / 40)), np.float32)[..., None] / 255
        colour = (np.array(_HUES[kinds[cls]]) + rng.uniform(-30, 30, 3)) * rng.uniform(0.6, 1.1) * (0.55 + 0.45 * shade)
        image = image * (1 - soft) + np.clip(colour, 0, 255) * soft
        rows.append([cls, xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return np.clip(image + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8), np.array(rows, np.float32)


def generate(count, size=128, seed=0, kinds=KINDS, max_objects=3):
    """`count` images: `(images (count, size, size, 3) uint8, labels (count, max_objects, 5))`, the labels
    in the `DetectionSet` form (divided by the size, padded with -1). Seeded."""
    rng = np.random.default_rng(seed)
    photos = sample_photographs()
    drawn = [draw_image(rng, photos, size, kinds, max_objects) for _ in range(count)]
    owner = np.concatenate([np.full(len(r), i) for i, (_, r) in enumerate(drawn)])
    rows = np.concatenate([r for _, r in drawn]) / np.array([1, size, size, size, size], np.float32)
    return np.stack([im for im, _ in drawn]), detection_data.pack_boxes(owner, rows, count)


def write_photo_detection(root, fmt="coco", num_train=600, num_val=100, size=128, seed=0, kinds=KINDS,
                          max_objects=3):
    """Write the set (train with `seed`, val with `seed + 10_000`) under `root` in `fmt` ("coco" or "voc");
    returns `root`."""
    root = Path(root)
    for split, count, split_seed in (("train", num_train, seed), ("val", num_val, seed + 10_000)):
        images, labels = generate(count, size, split_seed, kinds, max_objects)
        sizes = np.full((count, 2), size)
        if fmt == "coco":
            detection_data.write_coco(root, split, [f"{split}_{i:06d}.png" for i in range(count)], sizes, labels,
                                      kinds, images=images)
        else:
            detection_data.write_voc(root, split, [f"{split}_{i:06d}" for i in range(count)], sizes, labels, kinds,
                                     images=images)
    return root


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m vision.detection_photos", allow_abbrev=False,
                                     description="write the offline photograph detection set in COCO or VOC layout")
    parser.add_argument("--out", required=True, type=Path, help="directory to write the layout into")
    parser.add_argument("--format", choices=["coco", "voc"], default="coco", help="layout (default coco)")
    parser.add_argument("--train", type=int, default=600, help="train images (default 600)")
    parser.add_argument("--val", type=int, default=100, help="val images (default 100)")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    parser.add_argument("--seed", type=int, default=0, help="data seed (default 0)")
    args = parser.parse_args(argv)
    if min(args.train, args.val) < 1 or args.size < 32:
        parser.error("--train and --val must be at least 1, --size at least 32")
    write_photo_detection(args.out, args.format, args.train, args.val, args.size, args.seed)
    print(f"wrote {args.train}+{args.val} images to {args.out}; train with: python -m vision.ssd train --data-dir "
          f"{args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
