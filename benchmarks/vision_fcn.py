"""FCN training speed (examples/s): the default CPU setting and the book's, XLA on and off.

Times `train_on_batch` of the compiled FCN (masked loss, Adam, cosine schedule) on
in-memory random pixels and labels, so decoding costs nothing; then the whole
`voc.train_dataset` input pipeline alone on generated VOC-format files, to show it
is not the bottleneck. One JSON line per measurement, plus the XLA/no-XLA ratio.

    python -m benchmarks.vision_fcn [--steps 4] [--book]
"""
import argparse
import tempfile
import time

import numpy as np

from benchmarks.harness import report

SETTINGS = {
    "default": {"crop": "128x128", "width": 32, "batch_size": 8},
    "book": {"crop": "320x480", "width": 64, "batch_size": 4},  # the book's crop and ResNet-18; smaller batch
}


def train_rate(name, steps, jit):
    """Examples/s of `steps` training steps (after one traced warm-up step)."""
    import keras

    from vision import fcn

    cfg = fcn.FCNConfig(**SETTINGS[name])
    cfg.validate()
    model = fcn.build_fcn(width=cfg.width)
    model.compile(fcn._optimizer(cfg, 100), loss=fcn.masked_cross_entropy, jit_compile=jit)
    h, w = cfg.crop_size
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (cfg.batch_size, h, w, 3)).astype(np.float32)
    y = rng.integers(0, 6, (cfg.batch_size, h, w)).astype(np.int32)
    model.train_on_batch(x, y)
    tic = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    seconds = time.perf_counter() - tic
    keras.backend.clear_session()
    return report(f"fcn train {name} (crop {cfg.crop}, width {cfg.width}, batch {cfg.batch_size}, "
                  f"xla {'on' if jit else 'off'})", "examples", steps * cfg.batch_size, seconds)


def pipeline_rate(batches=40):
    from vision import voc

    with tempfile.TemporaryDirectory() as tmp:
        root = voc.generate_shapes_voc(tmp, num_train=320, num_val=1, seed=0)
        images, labels = voc.read_split(root, "train")
        data = voc.train_dataset(images, labels, (128, 128), 8, seed=0, epoch=0)
        next(iter(data))
        tic = time.perf_counter()
        count = sum(int(x.shape[0]) for x, _ in data.take(batches))
        return report("voc.train_dataset (decode, crop, flip, batch 8)", "examples", count,
                      time.perf_counter() - tic)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--book", action="store_true", help="also time the book's 320x480, width-64 setting")
    args = parser.parse_args()
    import common  # noqa: F401  (quiet TensorFlow start-up)

    pipeline_rate()
    on = train_rate("default", args.steps, jit=True)
    off = train_rate("default", args.steps, jit=False)
    report("fcn train default: xla on / off", "ratio", on["rate"] / off["rate"], 1.0)
    if args.book:
        train_rate("book", args.steps, jit=False)


if __name__ == "__main__":
    main()
