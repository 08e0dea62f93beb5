"""Sprite images for the GANs: the book's Pokemon sprites, any ImageFolder, and an offline generator.

The reader takes an ImageFolder layout (`ROOT/CLASS/*.png`, the layout of the book's
`pokemon.zip`, whose top folder is `pokemon/`), composites transparent (RGBA or
palette) sprites onto a background colour, resizes them to `size x size` and scales
them to [-1, 1]. `demo_sprites` writes seeded sprite-like RGBA PNGs in the same layout
so the same reader runs offline.
"""
import sys
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from common.data import demo_cache_dir, resolve_dataset
from common.errors import DatasetError
from common.files import atomic_path

POKEMON_URL = "http://d2l-data.s3-accelerate.amazonaws.com/pokemon.zip"
POKEMON_SHA1 = "c065c0e2593b8b161a2d7873e42418bf6a21106c"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
BACKGROUNDS = {"white": (255, 255, 255), "black": (0, 0, 0)}
# Version of what `demo_sprites` writes (`demo_sprite_arrays` through `write_image_folder`), part of
# its cache folder name (`gan-demo/sprites-<n>-<size>-<seed>-v1`): bump it whenever the bytes it
# writes change, so sprites cached by the older code are not reused.
GENERATOR_VERSION = 1


def image_files(root):
    """Sorted image paths of an ImageFolder `root` (`root/CLASS/*.png` and friends)."""
    root = Path(root)
    return sorted(p for p in root.glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def load_sprite(path, size, background=(255, 255, 255)):
    """One image as float32 (size, size, 3) in [-1, 1].

    Transparency (an alpha channel or a palette's transparent index) is composited onto
    `background` (an RGB triple in 0..255) before the resize, so the edges blend into the
    background instead of into the undefined colour of transparent pixels.
    """
    with Image.open(path) as img:
        img.load()
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32)
    alpha = rgba[..., 3:] / 255.0
    rgb = rgba[..., :3] * alpha + np.asarray(background, np.float32) * (1.0 - alpha)
    rgb = Image.fromarray(np.round(rgb).astype(np.uint8)).resize((size, size), Image.LANCZOS)
    return np.asarray(rgb, dtype=np.float32) / 127.5 - 1.0


def read_image_folder(root, size, background="white"):
    """All images of an ImageFolder as float32 (N, size, size, 3) in [-1, 1].

    Unreadable files are skipped and counted (one line on stderr naming the first);
    a folder with no readable image raises `DatasetError`.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"image folder {root} does not exist")
    files = image_files(root)
    if not files:
        raise DatasetError(f"{root} holds no images; expected the ImageFolder layout {root}/CLASS/*.png")
    fill = BACKGROUNDS[background]
    images, bad = [], []
    for path in files:
        try:
            images.append(load_sprite(path, size, fill))
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            bad.append(path)
    if not images:
        raise DatasetError(f"none of the {len(files)} image files under {root} could be read (first: {bad[0]}); "
                           "they are empty, truncated or not images")
    if bad:
        print(f"warning: skipped {len(bad)} unreadable image(s) of {len(files)} under {root} (first: {bad[0]})",
              file=sys.stderr)
    return np.stack(images)


def sprite_root(data_dir=None, demo=False):
    """The ImageFolder root to train on.

    `demo`: the offline generated sprites. `data_dir` holding `pokemon/` (the book's
    archive layout): that folder; any other `data_dir`: used as the ImageFolder root
    itself. Neither: the cached or downloaded `pokemon.zip`.
    """
    if demo and data_dir is None:
        return demo_sprites()
    if data_dir is not None:
        data_dir = Path(data_dir).expanduser()
        if not data_dir.is_dir():
            raise DatasetError(f"--data-dir {data_dir} does not exist or is not a directory")
        return data_dir / "pokemon" if (data_dir / "pokemon").is_dir() else data_dir
    return resolve_dataset("pokemon", required=["pokemon"], url=POKEMON_URL, sha1=POKEMON_SHA1,
                           hint="--demo") / "pokemon"


def split_holdout(images, fraction, seed):
    """Seeded split into (train, held-out); the held-out part is the real-vs-real reference."""
    order = np.random.default_rng(seed).permutation(len(images))
    n_hold = int(round(len(images) * fraction))
    if n_hold < 2 or len(images) - n_hold < 2:
        raise DatasetError(f"{len(images)} images are too few to hold out {fraction:.0%} for the quality "
                           "reference; give at least 10 images")
    return images[order[n_hold:]], images[order[:n_hold]]


def _blob_masks(rng, n, size):
    """(n, size, size) boolean left-right symmetric creature silhouettes: a body, a head, limbs."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    x = np.abs(x - 0.5)  # mirror: every shape is symmetric about the vertical axis
    parts = []
    for cy, cx, ry, rx in [((0.55, 0.7), (0.0, 0.05), (0.15, 0.28), (0.12, 0.25)),   # body
                           ((0.25, 0.4), (0.0, 0.02), (0.1, 0.18), (0.1, 0.2)),     # head
                           ((0.75, 0.88), (0.12, 0.25), (0.05, 0.1), (0.04, 0.08)),  # feet
                           ((0.1, 0.3), (0.1, 0.25), (0.04, 0.12), (0.03, 0.06))]:  # ears
        p = [rng.uniform(lo, hi, size=(n, 1, 1)).astype(np.float32) for lo, hi in (cy, cx, ry, rx)]
        parts.append(((y - p[0]) / p[2]) ** 2 + ((x - p[1]) / p[3]) ** 2 <= 1.0)
    has_ears = rng.random((n, 1, 1)) < 0.6
    return parts[0] | parts[1] | parts[2] | (parts[3] & has_ears), parts[1]


def demo_sprite_arrays(n, size=64, seed=0):
    """Seeded sprite-like RGBA images (n, size, size, 4) uint8: outlined two-tone creatures with eyes."""
    rng = np.random.default_rng(seed)
    mask, head = _blob_masks(rng, n, size)
    y = np.arange(size)[None, :, None]
    base = rng.integers(40, 256, size=(n, 1, 1, 3))
    shade = (base * rng.uniform(0.45, 0.8, size=(n, 1, 1, 1))).astype(np.int64)
    belly = (y > size * rng.uniform(0.5, 0.65, size=(n, 1, 1)))[..., None]
    rgb = np.where(belly, shade, base)
    # outline: mask pixels with a background 4-neighbour
    pad = np.pad(mask, ((0, 0), (1, 1), (1, 1)))
    interior = pad[:, :-2, 1:-1] & pad[:, 2:, 1:-1] & pad[:, 1:-1, :-2] & pad[:, 1:-1, 2:]
    edge = mask & ~interior
    # eyes: two dark dots inside the head
    yy, xx = np.mgrid[0:size, 0:size] / size
    ey = rng.uniform(0.22, 0.32, size=(n, 1, 1))
    ex = rng.uniform(0.05, 0.1, size=(n, 1, 1))
    eyes = ((yy - ey) ** 2 + (np.abs(xx - 0.5) - ex) ** 2 <= (0.03) ** 2) & head
    rgb = np.where((edge | eyes)[..., None], 20, rgb)
    alpha = np.where(mask, 255, 0)[..., None]
    return np.concatenate([rgb, alpha], axis=-1).astype(np.uint8)


def write_image_folder(root, rgba, per_class=8):
    """Write RGBA uint8 images (N, H, W, 4) as `root/NNN/demo_MMMM.png`, `per_class` a folder."""
    root = Path(root)
    for i, img in enumerate(rgba):
        folder = root / f"{i // per_class + 1:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img, "RGBA").save(folder / f"demo_{i:04d}.png")
    return root


def demo_sprites(n=320, size=64, seed=0):
    """ImageFolder of `n` generated sprites under the cache (written once, then reused)."""
    target = demo_cache_dir("gan-demo", f"sprites-{n}-{size}-{seed}", version=GENERATOR_VERSION)
    if not (target / "DONE").exists():
        with atomic_path(target, directory=True) as tmp:
            write_image_folder(tmp / "pokemon", demo_sprite_arrays(n, size, seed))
            (tmp / "DONE").write_text(str(n))
    return target / "pokemon"
