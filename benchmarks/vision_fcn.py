"""FCN training speed (examples/s): the default CPU setting and the book's, XLA on and off, FCN-8s vs FCN-32s.

Times `train_on_batch` of the compiled FCN (masked loss, Adam, cosine schedule) on
in-memory random pixels and labels, so decoding costs nothing; then the whole
`voc.train_dataset` input pipeline alone on the default training data, the photograph set of
`vision.photo_segmentation` (the default's scale augmentation and colour jitter, and the book's
plain crops), to show it is not the bottleneck; and the confusion-matrix counting that scores mIoU (ours, one
`tf.math.bincount`) against `keras.metrics.MeanIoU(ignore_class=255)`. One JSON line per
measurement, plus the XLA/no-XLA and ours/Keras ratios.

    python -m benchmarks.vision_fcn [--steps 4] [--book]
"""
import argparse
import time

import numpy as np

from benchmarks.harness import report

SETTINGS = {
    "default": {"crop": (256, 256), "width": 32, "batch_size": 8},
    "book": {"crop": (320, 480), "width": 64, "batch_size": 4},  # the book's crop and ResNet-18; smaller batch
}


def train_rate(name, steps, jit, head="fcn8s"):
    """Examples/s of `steps` training steps (after one traced warm-up step)."""
    import keras

    from vision import fcn

    cfg = fcn.Config(**SETTINGS[name], head=head)
    cfg.validate()
    model = fcn.build_fcn(width=cfg.width, head=head)
    model.compile(fcn.make_optimizer(cfg, 100, model), loss=fcn.masked_cross_entropy, jit_compile=jit)
    h, w = cfg.crop
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (cfg.batch_size, h, w, 3)).astype(np.float32)
    y = rng.integers(0, 6, (cfg.batch_size, h, w)).astype(np.int32)
    model.train_on_batch(x, y)
    tic = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    seconds = time.perf_counter() - tic
    keras.backend.clear_session()
    return report(f"fcn train {name} {head} (crop {h}x{w}, width {cfg.width}, batch {cfg.batch_size}, "
                  f"xla {'on' if jit else 'off'})", "examples", steps * cfg.batch_size, seconds)


def pipeline_rate(batches=30):
    """Examples/s of the input pipeline `python -m vision.fcn train` runs by default: the photograph set
    (`vision.photo_segmentation.photo_voc`, generated into the cache on the first run) through
    `voc.train_dataset` with fcn.Config's default crop, scale augmentation, jitter and batch; then the
    same photos with the book's plain crops (no scale, no jitter), for comparison."""
    from vision import fcn, photo_segmentation, voc

    cfg = fcn.Config()
    images, labels, sizes = fcn._split(photo_segmentation.photo_voc(seed=cfg.data_seed), "train")
    (h, w), (low, high) = cfg.crop, cfg.scale
    settings = {f"default: scale {low:g}-{high:g}, crop {h}x{w}, flip, jitter {cfg.jitter:g}":
                (images, labels, {"scale": cfg.scale, "jitter": cfg.jitter}),
                # plain crops need images at least the crop's size, as in `fcn.train`
                f"book: crop {h}x{w}, flip": (*voc.filter_by_size(images, labels, sizes, cfg.crop), {})}
    for what, (paths, label_paths, options) in settings.items():
        data = voc.train_dataset(paths, label_paths, cfg.crop, cfg.batch_size, seed=0, epoch=0, **options)
        next(iter(data))
        tic = time.perf_counter()
        count = sum(int(x.shape[0]) for x, _ in data.take(min(batches, len(paths) // cfg.batch_size)))
        report(f"voc.train_dataset on the photograph set ({what}, batch {cfg.batch_size})", "examples", count,
               time.perf_counter() - tic)


def confusion_rates(batches=50):
    """Pixels/s of counting a (21, 21) confusion matrix of batch-8 160x192 masks (10% ignored):
    ours vs keras.metrics.MeanIoU, both in a tf.function; they give identical matrices."""
    import keras
    import tensorflow as tf

    from vision.segmentation_metrics import confusion_matrix

    rng = np.random.default_rng(0)
    y = rng.integers(0, 21, (8, 160, 192))
    y[rng.random(y.shape) < 0.1] = 255
    p = np.where(rng.random(y.shape) < 0.6, np.where(y == 255, 0, y), rng.integers(0, 21, y.shape))
    y, p = tf.constant(y, tf.int32), tf.constant(p, tf.int64)
    metric = keras.metrics.MeanIoU(21, ignore_class=255)
    ours = tf.function(lambda a, b: confusion_matrix(a, b, 21))
    theirs = tf.function(lambda a, b: metric.update_state(a, b))
    rates = {}
    for name, fn in (("segmentation_metrics.confusion_matrix", ours), ("keras.metrics.MeanIoU", theirs)):
        fn(y, p)
        tic = time.perf_counter()
        for _ in range(batches):
            fn(y, p)
        rates[name] = report(f"{name} (batch 8, 160x192)", "pixels", batches * y.shape.num_elements(),
                             time.perf_counter() - tic)["rate"]
    report("confusion matrix: ours / keras MeanIoU", "ratio", rates["segmentation_metrics.confusion_matrix"]
           / rates["keras.metrics.MeanIoU"], 1.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--book", action="store_true", help="also time the book's 320x480, width-64 setting")
    args = parser.parse_args()
    import common  # noqa: F401  (quiet TensorFlow start-up)

    pipeline_rate()
    confusion_rates()
    on = train_rate("default", args.steps, jit=True)
    off = train_rate("default", args.steps, jit=False)
    report("fcn train default: xla on / off", "ratio", on["rate"] / off["rate"], 1.0)
    fcn32s = train_rate("default", args.steps, jit=False, head="fcn32s")
    report("fcn train default: fcn8s / fcn32s", "ratio", off["rate"] / fcn32s["rate"], 1.0)
    if args.book:
        train_rate("book", args.steps, jit=False, head="fcn32s")


if __name__ == "__main__":
    main()
