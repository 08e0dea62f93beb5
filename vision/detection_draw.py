"""Pictures of detections: boxes with `class:score` drawn on images, and the grid of a validation batch.

NumPy and PIL only (TensorFlow is imported where a detector runs), so a command can offer the
drawing threshold as a flag default without loading it.
"""
import functools
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from common.errors import DatasetError
from common.files import atomic_path

# Focal loss scores a found banana 0.3-0.6 (the default run: top box median 0.50, 5th percentile
# 0.33; the second box rarely above 0.35), so boxes are drawn from 0.4 rather than 0.5. The demo's
# recipe scores higher (top box median 0.69) and puts no box >= 0.4 on the background of 256 images.
DRAW_THRESHOLD = 0.4


@functools.lru_cache(maxsize=None)
def _font(size):
    """PIL's bundled font at `size` pixels, loaded once per size."""
    return ImageFont.load_default(size=size)


def draw_detections(image, detections, threshold, best=False, classes=None):
    """PIL image with the detections `(k, 6)` (normalized boxes, by decreasing score) scoring
    >= threshold drawn in white with `class:score` (the class's name from `classes`, else its
    index); with `best`, an image with none of those gets its best detection drawn in grey instead."""
    image = Image.fromarray(np.asarray(image, np.uint8)).convert("RGB")
    draw = ImageDraw.Draw(image)
    w, h = image.size
    found = detections[detections[:, 0] >= 0]
    keep = found[found[:, 1] >= threshold]
    colour = (255, 255, 255)
    if best and len(keep) == 0 and len(found):
        keep, colour = found[:1], (150, 150, 150)
    font = _font(max(10, w // 20))
    for cls, score, *box in keep:
        xy = [box[0] * w, box[1] * h, box[2] * w, box[3] * h]
        draw.rectangle(xy, outline=colour, width=max(2, w // 128))
        name = classes[int(cls)] if classes else int(cls)
        draw.text((xy[0] + 3, xy[1] + 2), f"{name}:{score:.2f}", fill=colour, font=font)
    return image


def read_images(paths, image_size):
    """The images at `paths` as RGB PIL images, plus their `(n, size, size, 3)` uint8 batch, resized as the
    training pipeline and the exported model resize (`vision.banana.resize_image`)."""
    from vision.banana import resize_image  # TensorFlow: loaded when a detector is about to run

    originals = []
    for path in paths:
        try:
            with Image.open(path) as im:
                originals.append(im.convert("RGB"))
        except (OSError, ValueError) as e:
            raise DatasetError(f"cannot read image {path} ({e.__class__.__name__}); pass PNG or JPEG files") from None
    batch = np.stack([resize_image(np.asarray(im), image_size).numpy() for im in originals])
    return originals, batch


def write_detection_grid(detector, paths, image_size, path, threshold=DRAW_THRESHOLD, classes=None):
    """A PNG grid of `paths` (drawn at their own resolution) with the boxes scoring >= threshold
    (white), or else each image's best box (grey), labelled with `classes` names when given."""
    import tensorflow as tf

    originals, batch = read_images(paths, image_size)
    dets = detector(tf.constant(batch)).numpy()
    images = [np.asarray(draw_detections(np.asarray(im), d, threshold, best=True, classes=classes).resize((256, 256)))
              for im, d in zip(originals, dets)]
    images += [np.zeros_like(images[0])] * (-len(images) % 4)
    grid = np.concatenate([np.concatenate(images[i:i + 4], axis=1) for i in range(0, len(images), 4)], axis=0)
    canvas = Image.new("RGB", (grid.shape[1], grid.shape[0] + 26))
    canvas.paste(Image.fromarray(grid), (0, 26))
    draw = ImageDraw.Draw(canvas)
    font = _font(15)
    draw.text((6, 5), f"white: boxes scoring >= {threshold:.2f} (class:score)", fill=(255, 255, 255), font=font)
    draw.text((grid.shape[1] // 2, 5), f"grey: an image's best box when none reaches {threshold:.2f}",
              fill=(150, 150, 150), font=font)
    with atomic_path(path) as tmp:
        canvas.save(tmp)
    return Path(path)
