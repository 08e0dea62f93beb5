"""Recsys data at scale: rows/s and peak memory of the Criteo first pass and training pipeline, and of
reading MovieLens of ML-25M size.

Each measurement runs in a fresh subprocess, so its `peak_rss_mb` is that step's own peak
(memory must stay flat as the rows grow). Criteo: `generate` writes N rows in the Kaggle
`train.txt` layout, `first-pass` runs `recsys.criteo.prepare_criteo` on a cold cache, `pipeline`
reads the fit part once through `criteo.block_dataset` (batches of 1,024, no model), and
`deepfm` trains DeepFM (the `recsys.deepfm` defaults) on the first 300 batches of that
pipeline, for the rate the pipeline has to keep up with. MovieLens: `ml-25m` writes 25M
ratings in the ML-25M layout and times `recsys.movielens.read_movielens` on them.

    python -m benchmarks.recsys_data --criteo-rows 1000000 10000000 --work-dir /tmp/recsys-data
    python -m benchmarks.recsys_data --movielens --work-dir /tmp/recsys-data
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.harness import report


def _criteo_file(work_dir, rows):
    return Path(work_dir) / f"criteo-{rows}" / "train.txt"


def step(name, work_dir, rows):
    """One measurement, in this process (the parent runs each in a fresh one)."""
    from recsys import criteo

    path = _criteo_file(work_dir, rows)
    cache_dir = Path(work_dir) / f"criteo-{rows}" / "cache"
    if name == "generate":
        tic = time.perf_counter()
        if not path.exists():
            criteo.generate_criteo(path, rows)
        report("criteo generate (Kaggle train.txt layout)", "rows", rows, time.perf_counter() - tic,
               bytes=path.stat().st_size)
    elif name == "first-pass":
        criteo.clear_cache(cache_dir)
        tic = time.perf_counter()
        cache = criteo.prepare_criteo(path, cache_dir=cache_dir)
        report("criteo first pass (text -> cached npy parts)", "rows", rows, time.perf_counter() - tic,
               parts=cache.rows, features=cache.num_features, file_bytes=path.stat().st_size)
    elif name == "pipeline":
        fit = criteo.prepare_criteo(path, cache_dir=cache_dir).part("fit")
        tic = time.perf_counter()
        seen = sum(int(y.shape[0]) for _, y in criteo.block_dataset(fit, 1024, seed=0, epoch=0))
        assert seen == len(fit.labels)
        report("criteo training pipeline (block_dataset, batch 1024, one epoch)", "rows", seen,
               time.perf_counter() - tic)
    elif name == "deepfm":
        import keras

        from recsys import deepfm

        fit = criteo.prepare_criteo(path, cache_dir=cache_dir).part("fit")
        config = deepfm.Config(dataset="criteo")
        keras.utils.set_random_seed(0)
        model = deepfm.build(config, fit)
        batches = criteo.block_dataset(fit, config.batch_size, seed=0, epoch=0).take(300)
        count = min(300, len(fit.labels) // config.batch_size)
        model.fit(batches.take(20), verbose=0)  # trace and warm up
        tic = time.perf_counter()
        model.fit(batches.take(count), verbose=0)
        report(f"deepfm training on the criteo pipeline ({count} batches)", "rows", count * config.batch_size,
               time.perf_counter() - tic, features=fit.num_features, batch_size=config.batch_size)
    elif name == "ml-25m":
        from recsys.movielens import generate_movielens_large, read_movielens

        directory = Path(work_dir) / "ml-25m"
        tic = time.perf_counter()
        generate_movielens_large(directory, 25_000_095, 162_541, 59_047)
        generated = time.perf_counter() - tic
        tic = time.perf_counter()
        data = read_movielens(directory, "ml-25m")
        report("movielens read_movielens (generated ratings.csv, ML-25M size)", "ratings", len(data),
               time.perf_counter() - tic, users=data.num_users, items=data.num_items,
               generate_seconds=round(generated, 1),
               file_bytes=(directory / "ratings.csv").stat().st_size, ratings_mb=round(
                   sum(a.nbytes for a in (data.users, data.items, data.ratings, data.timestamps)) / 2 ** 20, 1))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--criteo-rows", type=int, nargs="*", default=[], help="generated Criteo sizes to measure")
    parser.add_argument("--steps", nargs="*", default=["generate", "first-pass", "pipeline", "deepfm"],
                        help="Criteo steps to run for each size")
    parser.add_argument("--movielens", action="store_true", help="measure reading ML-25M-sized MovieLens")
    parser.add_argument("--work-dir", type=Path, required=True, help="where generated files and caches go")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step:
        return step(args.step, args.work_dir, args.rows)
    jobs = [(name, rows) for rows in args.criteo_rows for name in args.steps]
    jobs += [("ml-25m", 0)] if args.movielens else []
    for name, rows in jobs:
        out = subprocess.run([sys.executable, "-m", "benchmarks.recsys_data", "--work-dir", str(args.work_dir),
                              "--step", name, "--rows", str(rows)], capture_output=True, text=True)
        lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
        if out.returncode or not lines:
            sys.exit(f"{name} ({rows} rows) failed: {out.stderr.strip().splitlines()[-1:]}")
        print(json.dumps({**json.loads(lines[-1]), "step": name, "rows_in_file": rows}), flush=True)


if __name__ == "__main__":
    main()
