"""A VOC-format segmentation set on real photographs, built offline and seeded.

Backgrounds are random crops (random scale, position and flip, mild colour change) of the
photographs that ship with the installed packages: scikit-learn's two sample images
(`sklearn.datasets.load_sample_images`: china.jpg and flower.jpg, 427x640) and matplotlib's
`grace_hopper.jpg` (600x512). Onto each background go 1-4 objects of 5 classes, the shapes
circle, square, triangle, cross and star (VOC class indices 1-5), each filled with a texture
cut from another photograph, tinted towards a hue loosely tied to its class (strength
0.3-0.7, so colour is a hint, not the answer), lit by a linear brightness gradient and
anti-aliased into the background; later objects occlude earlier ones. Labels are VOC palette
PNGs with a 4-pixel 255 ("void") band centred on every class edge, as VOC draws them; images are
JPEG, 330-375 x 450-500 pixels (VOC's are at most 500 on a side). `class_names.txt` names the
classes (background, circle, square, triangle, cross, star), so `vision.fcn evaluate` reports
them by name.

    python -m vision.photo_segmentation --out DIR [--train 300] [--val 60] [--seed 0]
    python -m vision.fcn train --data-dir DIR      # or: python -m vision.fcn train --dataset photos

writes `DIR/VOCdevkit/VOC2012/{JPEGImages,SegmentationClass,ImageSets/Segmentation,class_names.txt}`, the
layout `vision.voc` reads. The same arguments write the same files.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from common.data import demo_cache_dir
from common.errors import DlsuiteError
from common.files import writable_dir
from vision import voc

HEIGHT, WIDTH = (330, 375), (450, 500)
BOUNDARY_PX = 4
_SUPERSAMPLE = 4
# Version of what `generate_photo_voc` writes, part of the `photo_voc` cache folder name: bump it
# whenever the bytes it writes change, here or through what it uses from vision.voc (`draw_shape`,
# `SHAPE_HUES`, `hue_rgb`, `write_label`), so cached sets from the older code are not reused.
GENERATOR_VERSION = 1


def sample_photographs():
    """The offline photographs as a list of (H, W, 3) uint8 arrays (scikit-learn's two, matplotlib's one)."""
    from matplotlib import cbook
    from sklearn.datasets import load_sample_images

    photos = list(load_sample_images().images)
    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as img:
        photos.append(np.asarray(img.convert("RGB")))
    return [np.ascontiguousarray(p, dtype=np.uint8) for p in photos]


def _random_crop(rng, photo, h, w, scale):
    """A (h, w, 3) float32 crop of `photo` covering `scale` (0-1] of its largest h:w window, resized."""
    ph, pw = photo.shape[:2]
    side = min(ph / h, pw / w) * scale
    ch, cw = max(int(h * side), 8), max(int(w * side), 8)
    y, x = rng.integers(0, ph - ch + 1), rng.integers(0, pw - cw + 1)
    crop = Image.fromarray(photo[y:y + ch, x:x + cw]).resize((w, h), Image.BILINEAR)
    out = np.asarray(crop, np.float32)
    return out[:, ::-1] if rng.random() < 0.5 else out


def draw_sample(rng, photos, h, w):
    """One image (h, w, 3) uint8 and its label (h, w) uint8: a photo crop with 1-4 textured objects."""
    background = rng.integers(len(photos))
    image = _random_crop(rng, photos[background], h, w, rng.uniform(0.35, 1.0))
    image = image * rng.uniform(0.8, 1.2) + rng.uniform(-20, 20, 3)
    label = Image.new("L", (w, h), 0)
    draw_label = ImageDraw.Draw(label)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    names = list(voc.SHAPE_CLASSES)  # circle, square, triangle, cross, star = 1-5
    for _ in range(rng.integers(1, 5)):
        shape = names[rng.integers(len(names))]
        r = rng.uniform(0.12, 0.32) * min(h, w)
        cx, cy = rng.uniform(0.05 * w, 0.95 * w), rng.uniform(0.05 * h, 0.95 * h)
        angle = rng.uniform(0, 2 * np.pi)
        # Anti-aliased coverage: the shape drawn at 4x and box-filtered down.
        big = Image.new("L", (w * _SUPERSAMPLE, h * _SUPERSAMPLE), 0)
        voc.draw_shape(ImageDraw.Draw(big), shape, cx, cy, r, angle, scale=_SUPERSAMPLE, fill=255)
        alpha = np.asarray(big.resize((w, h), Image.BOX), np.float32)[..., None] / 255
        texture = _random_crop(rng, photos[rng.integers(len(photos))], h, w, rng.uniform(0.2, 0.6))
        hue = (voc.SHAPE_HUES[shape] + rng.normal(0, 0.04)) % 1.0
        tint = rng.uniform(0.3, 0.7)
        texture = (1 - tint) * texture + tint * 255 * voc.hue_rgb(hue) * (0.4 + 0.6 * texture.mean(-1, keepdims=True) / 255)
        direction = rng.uniform(0, 2 * np.pi)
        light = 1 + rng.uniform(0.1, 0.4) * (np.cos(direction) * (xx - cx) + np.sin(direction) * (yy - cy)) / r
        texture = texture * np.clip(light, 0.5, 1.5)[..., None]
        image = (1 - alpha) * image + alpha * texture
        voc.draw_shape(draw_label, shape, cx, cy, r, angle, fill=voc.SHAPE_CLASSES[shape])
    # VOC's void band: every pixel within BOUNDARY_PX / 2 of a class change, centred on the edge.
    window = BOUNDARY_PX + 1
    edge = np.asarray(label.filter(ImageFilter.MaxFilter(window))) != np.asarray(label.filter(ImageFilter.MinFilter(window)))
    label = np.where(edge, voc.IGNORE_INDEX, np.asarray(label, np.uint8)).astype(np.uint8)
    pixels = image + rng.normal(0, 3, image.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8), label


def generate_photo_voc(root, num_train=300, num_val=60, seed=0):
    """Write the photograph set (see the module docstring) under `root` in the VOC2012 layout.

    Train images are `photo_000000` ... and val images follow on; sizes are drawn per image
    from HEIGHT x WIDTH. Seeded: the same arguments write the same files. Returns the
    `VOC2012` directory.
    """
    root_voc = Path(root) / "VOCdevkit" / "VOC2012"
    for sub in voc.VOC_REQUIRED:
        (root_voc / sub).mkdir(parents=True, exist_ok=True)
    photos = sample_photographs()
    rng = np.random.default_rng(seed)
    names = {"train": [f"photo_{i:06d}" for i in range(num_train)],
             "val": [f"photo_{i:06d}" for i in range(num_train, num_train + num_val)]}
    for name in names["train"] + names["val"]:
        h, w = int(rng.integers(HEIGHT[0], HEIGHT[1] + 1)), int(rng.integers(WIDTH[0], WIDTH[1] + 1))
        image, label = draw_sample(rng, photos, h, w)
        Image.fromarray(image).save(root_voc / "JPEGImages" / f"{name}.jpg", quality=90)
        voc.write_label(root_voc / "SegmentationClass" / f"{name}.png", label)
    for split, split_names in names.items():
        (root_voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(split_names) + "\n")
    voc.write_class_names(root_voc, voc.SHAPE_NAMES)
    return root_voc


def photo_voc(num_train=300, num_val=60, seed=0):
    """The photograph set for these arguments, generated into the dataset cache once (in a temporary
    directory renamed into place when complete; a set cached without `class_names.txt` gets it added).
    Returns its `VOC2012` directory."""
    root = demo_cache_dir("vision-demo", f"photos-voc-{num_train}-{num_val}-seed{seed}", version=GENERATOR_VERSION)
    return voc.cached_shape_set(root, lambda tmp: generate_photo_voc(tmp, num_train, num_val, seed),
                                f"generating {num_train}+{num_val} VOC-format photograph images into {root}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m vision.photo_segmentation", allow_abbrev=False,
                                     description="write the offline photograph segmentation set in VOC2012 layout")
    parser.add_argument("--out", required=True, help="directory to write VOCdevkit/VOC2012 into")
    parser.add_argument("--train", type=int, default=300, help="train images (default 300)")
    parser.add_argument("--val", type=int, default=60, help="val images (default 60)")
    parser.add_argument("--seed", type=int, default=0, help="data seed (default 0)")
    args = parser.parse_args(argv)
    if args.train < 1 or args.val < 1:
        parser.error("--train and --val must be at least 1")
    try:
        writable_dir(args.out)  # before the photographs are loaded
    except DlsuiteError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return e.exit_code
    root = generate_photo_voc(args.out, args.train, args.val, args.seed)
    print(f"wrote {args.train}+{args.val} images to {root}; train with: python -m vision.fcn train --data-dir {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
