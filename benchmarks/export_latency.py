"""Latency of exported models against `predict`'s code path, in one process on this CPU.

`python -m benchmarks.export_latency [--ssd-run R] [--sentiment-run R] [--repeat 30] [--batch 32]` prints one
JSON line per case: `model` (ssd, sentiment), `path` (predict: the suite's in-process code with the model
loaded once, `vision.detection_draw.read_images` + `make_detector` for SSD, `tokenize_review` +
`encode_padded` + the model for sentiment; saved_model: the exported `serving_default` signature on file
bytes / raw strings; tflite: `model.tflite`'s signature runner, one image per call, after `read_images`),
`request` (single: one image or review; batched: `--batch` of them), the median and 90th-percentile
milliseconds per request, items/s, and `vs_predict` (median over predict's median: below 1 is faster).
Every path reads its inputs from disk (images) or memory (reviews) inside the timed call; drawing the
PNGs `predict` writes is not timed. Without `--ssd-run`/`--sentiment-run` it trains a tiny demo run of each
into a temporary folder first (untrained-ish weights: NMS sees more candidate boxes than a trained model).
A model whose export is missing is reported as one `skipped` line.
"""
import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (quiet TensorFlow import)
import numpy as np
import tensorflow as tf

from benchmarks.harness import machine, peak_rss_mb


def timed(fn, repeat, warmup=2):
    """Median and 90th-percentile seconds of `fn()` over `repeat` calls after `warmup`."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return statistics.median(times), float(np.percentile(times, 90))


def line(model, path, request, items, median, p90, baseline=None, **extra):
    out = {"what": f"{model} {path} {request}", "model": model, "path": path, "request": request, "items": items,
           "median_ms": round(median * 1e3, 3), "p90_ms": round(p90 * 1e3, 3), "items_per_s": round(items / median, 1),
           **({"vs_predict": round(median / baseline, 3)} if baseline else {}), **extra,
           "peak_rss_mb": peak_rss_mb(), "machine": machine()}
    print(json.dumps(out), file=sys.__stdout__, flush=True)
    return out


def skipped(model, reason):
    print(json.dumps({"what": f"{model} skipped", "model": model, "skipped": reason, "machine": machine()}),
          file=sys.__stdout__, flush=True)


def ssd_val_images(config):
    """The validation images of an SSD run trained on a banana-layout --data-dir or the generated set."""
    from vision import banana

    data = config.get("data") or {}
    root = Path(data["path"]) if data.get("source") == "dir" else banana.banana_root(
        None, config["source"], config["train_images"], config["val_images"], config["data_seed"],
        config["max_objects"], config["generated_size"])
    return sorted((root / banana.SPLITS["val"] / "images").glob("*.png"))


def bench_ssd(run_dir, image_dir, work, batch, repeat):
    from vision import ssd
    from vision.detection_draw import read_images

    config = json.loads((Path(run_dir) / "config.json").read_text())
    size, nms = config["image_size"], config["nms_threshold"]
    out = work / "ssd_export"
    ssd.export(run_dir, out=out, format="tflite")
    images = sorted(Path(image_dir).glob("*.png")) + sorted(Path(image_dir).glob("*.jpg")) if image_dir else \
        ssd_val_images(config)
    if not images:
        return skipped("ssd", f"no images found for {run_dir}; pass --images DIR")
    images = (images * batch)[:batch]
    detector = ssd.make_detector(ssd.load(run_dir), nms)
    serve = tf.saved_model.load(str(out)).signatures["serving_default"]
    runner = tf.lite.Interpreter(model_path=str(out / "model.tflite")).get_signature_runner()

    def predict(paths):
        return detector(tf.constant(read_images(paths, size)[1])).numpy()

    def saved_model(paths):
        return {k: v.numpy() for k, v in serve(images=tf.constant([p.read_bytes() for p in paths])).items()}

    def tflite(paths):
        resized = read_images(paths, size)[1]
        return [runner(images=resized[i:i + 1]) for i in range(len(paths))]

    for request, paths in (("single", images[:1]), ("batched", images)):
        base = timed(lambda: predict(paths), repeat)
        line("ssd", "predict", request, len(paths), *base, image_size=size)
        line("ssd", "saved_model", request, len(paths), *timed(lambda: saved_model(paths), repeat), base[0],
             image_size=size)
        line("ssd", "tflite", request, len(paths), *timed(lambda: tflite(paths), repeat), base[0], image_size=size)


def bench_sentiment(run_dir, work, batch, repeat):
    from nlp import classify, imdb, sentiment
    from nlp.text import encode_padded

    config = json.loads((Path(run_dir) / "config.json").read_text())
    out = work / "sentiment_export"
    sentiment.export(run_dir, out=out)
    model, vocab = sentiment.load(run_dir), classify.load_vocab(run_dir)
    serve = tf.saved_model.load(str(out)).signatures["serving_default"]
    review = ("A slow start, but the second half is a great movie: sharp writing, a cast that clearly enjoyed it, "
              "and an ending I did not see coming. I loved it! ") * 3
    reviews = [review] * batch

    def predict(texts):
        padded = encode_padded(vocab, [imdb.tokenize_review(t) for t in texts], config["max_len"], vocab[classify.PAD])
        return classify.class_probabilities(model, padded)

    def saved_model(texts):
        return {k: v.numpy() for k, v in serve(text=tf.constant(texts)).items()}

    for request, texts in (("single", reviews[:1]), ("batched", reviews)):
        base = timed(lambda: predict(texts), repeat)
        line("sentiment", "predict", request, len(texts), *base)
        line("sentiment", "saved_model", request, len(texts), *timed(lambda: saved_model(texts), repeat), base[0])
    skipped("sentiment tflite", "nlp.sentiment exports a SavedModel only (TFLite has no string ops)")


def train_tiny_ssd(work):
    """A 1-epoch demo SSD run (64 x 64 inputs, 32 generated images) in `work`."""
    from vision import ssd

    ssd.train(ssd.Config(epochs=1, train_images=32, val_images=32), demo=True, run_dir=str(work / "ssd"))
    return work / "ssd"


def train_tiny_sentiment(work):
    """A 1-epoch demo sentiment run in `work`."""
    from nlp import sentiment

    sentiment.train(sentiment.Config(epochs=1), demo=True, run_dir=str(work / "sentiment"))
    return work / "sentiment"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ssd-run", type=Path, help="a vision.ssd run (default: train a tiny demo run)")
    parser.add_argument("--sentiment-run", type=Path, help="an nlp.sentiment run (default: train a tiny demo run)")
    parser.add_argument("--images", type=Path, help="PNG/JPEG images for SSD (default: the run's validation images)")
    parser.add_argument("--models", default="ssd,sentiment", help="which to time (default: ssd,sentiment)")
    parser.add_argument("--batch", type=int, default=32, help="items of a batched request (default: 32)")
    parser.add_argument("--repeat", type=int, default=30, help="timed requests per case (default: 30)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):  # Keras' progress lines
        work = Path(tmp)
        if "ssd" in args.models:
            bench_ssd(args.ssd_run or train_tiny_ssd(work), args.images, work, args.batch, args.repeat)
        if "sentiment" in args.models:
            bench_sentiment(args.sentiment_run or train_tiny_sentiment(work), work, args.batch, args.repeat)


if __name__ == "__main__":
    main()
