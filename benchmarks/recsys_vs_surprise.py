"""Explicit-rating MF: ours (`recsys.mf`) against scikit-surprise's `SVD`, the library a user would pick.

Both train on the same random 90/10 split (seed 0) of real MovieLens 100K, in one process, each
`--repeat` times in turn (the fastest is reported): Surprise's default SVD, Surprise's tuned SVD (50
factors, 40 epochs, lr 0.007, reg 0.08) and ours (large batches, one `fit` call over all epochs) three
ways: the `recsys.mf` defaults (`--optimizer sgd`, Surprise's per-rating SGD a batch at a time), and
`--preset adam` with its `lazy_adam` (Adam on the batch's rows only) and with `adam` (the textbook Adam
on dense gradients). Training wall time is the fit alone (data already in memory, no run directory); the
test RMSE clips to the rating scale for both. `--large` adds ML-25M-sized generated data (162,541 users,
59,047 items, 25M ratings by default; `--large-ratings` to change), split 90/10: ours trains
`--large-epochs` epochs on all of the training ratings with each of `--large-optimizers` (per-epoch
seconds: the first epoch, which includes tracing, and the median and fastest of the others); Surprise's
tuned SVD, whose SGD visits each rating in a compiled but single-threaded loop, trains as many epochs on
`--surprise-fraction` of the training ratings, `--repeat` times, and its time per epoch is extrapolated
linearly to all of them (SGD's work per epoch is proportional to the ratings), as the JSON line says.
The ratio line gives median against mean and fastest against fastest. Each reports the RMSE it reaches
on the held-out 10% (Surprise's after training on its fraction only).

    python -m benchmarks.recsys_vs_surprise --data-dir ../shared/data/ml-100k
    python -m benchmarks.recsys_vs_surprise --data-dir ../shared/data/ml-100k --large --work-dir /tmp/ml25m
    python -m benchmarks.recsys_vs_surprise --data-dir ../shared/data/ml-100k --large --large-ratings 2000000 \
        --large-epochs 4 --surprise-fraction 1 --work-dir /tmp/ml2m
"""
import argparse
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
from sklearn.metrics import root_mean_squared_error

import common  # noqa: F401  (quiet TensorFlow import)
from benchmarks.harness import report
from common.extras import require
from recsys import mf
from recsys.movielens import generate_movielens_large, read_movielens
from recsys.splits import split_random

TUNED = {"n_factors": 50, "n_epochs": 40, "lr_all": 0.007, "reg_all": 0.08}


def surprise_trainset(part):
    """A Surprise trainset of the interactions `part` (built outside the timed fit)."""
    import pandas as pd

    surprise = require("surprise", "bench")
    frame = pd.DataFrame({"u": part.users, "i": part.items, "r": part.ratings.astype(np.float64)})
    reader = surprise.Reader(rating_scale=tuple(float(v) for v in part.rating_scale))
    return surprise.Dataset.load_from_df(frame, reader).build_full_trainset()


def surprise_fit(trainset, **params):
    """(fitted SVD, seconds) of `surprise.SVD(random_state=0, **params).fit(trainset)`."""
    surprise = require("surprise", "bench")
    algo = surprise.SVD(random_state=0, **params)
    tic = time.perf_counter()
    algo.fit(trainset)
    return algo, time.perf_counter() - tic


def surprise_rmse(algo, trainset, test):
    """Test RMSE of a fitted SVD, predicting in NumPy from its factors (what `algo.predict` computes,
    clipped to the scale; unknown users or items get their biases only)."""
    inner_u = np.array([trainset._raw2inner_id_users.get(u, -1) for u in np.unique(test.users)])
    inner_i = np.array([trainset._raw2inner_id_items.get(i, -1) for i in np.unique(test.items)])
    u = inner_u[np.searchsorted(np.unique(test.users), test.users)]
    i = inner_i[np.searchsorted(np.unique(test.items), test.items)]
    pred = np.full(len(test), trainset.global_mean)
    pred += np.where(u >= 0, algo.bu[np.maximum(u, 0)], 0) + np.where(i >= 0, algo.bi[np.maximum(i, 0)], 0)
    both = (u >= 0) & (i >= 0)
    pred[both] += np.sum(algo.pu[u[both]] * algo.qi[i[both]], axis=1)
    return float(root_mean_squared_error(test.ratings, np.clip(pred, *test.rating_scale)))


class EpochClock(keras.callbacks.Callback):
    """Times each epoch of a one-`fit` run over `epochs` concatenated epochs of `steps` batches each. Under
    `steps_per_execution` the callback sees only the first step of each execution, so an epoch boundary is
    timed at the first execution that starts on or after it (to within that many steps)."""

    def __init__(self, steps):
        super().__init__()
        self.steps, self.marks, self.next = steps, [], 0

    def on_train_batch_begin(self, batch, logs=None):
        while batch >= self.next:
            self.marks.append(time.perf_counter())
            self.next += self.steps

    def epoch_seconds(self, end):
        """Seconds of each epoch, given the time the fit ended."""
        return list(np.diff([*self.marks, end]))


def ours_fit(train, config, epochs=None):
    """(model, seconds, [seconds of each epoch]) of `recsys.mf` trained on `train`: the same model, loss and
    per-epoch seeded shuffles as `python -m recsys.mf train`, all epochs in one `fit` call."""
    keras.utils.set_random_seed(config.seed)
    epochs = epochs or config.epochs
    model = mf.build(config, train.num_users, train.num_items, float(train.ratings.mean()))
    dataset = mf.training_batches(train, config, epochs)
    clock = EpochClock(-(-len(train) // config.batch_size))
    tic = time.perf_counter()
    model.fit(dataset, epochs=1, verbose=0, callbacks=[clock])
    end = time.perf_counter()
    return model, end - tic, clock.epoch_seconds(end)


def recipe(optimizer):
    """`recsys.mf`'s Config for `optimizer`: the defaults for sgd, `--preset adam` for the two Adams."""
    if optimizer == "sgd":
        return mf.Config()
    return mf.Config(**{**mf.PRESETS["adam"], "optimizer": optimizer})


def compare_ml100k(data_dir, repeat=3):
    """Each of the five trains `repeat` times, in turn (so a slow spell of the machine hits all of them); each
    reports its fastest time (the RMSEs of the repeats are identical: every fit is seeded)."""
    data = read_movielens(data_dir)
    train, test = split_random(data, 0.1, seed=0)
    trainset = surprise_trainset(train)
    surprise_runs = {"surprise SVD default": {}, "surprise SVD tuned": TUNED}
    optimizers = ("sgd", "lazy_adam", "adam")
    seconds = {name: [] for name in (*surprise_runs, *optimizers)}
    rmses = {}
    for _ in range(repeat):
        for name, params in surprise_runs.items():
            algo, took = surprise_fit(trainset, **params)
            seconds[name].append(took)
            rmses[name] = surprise_rmse(algo, trainset, test)
        for optimizer in optimizers:
            model, took, _ = ours_fit(train, recipe(optimizer))
            seconds[optimizer].append(took)
            rmses[optimizer] = mf.rating_rmse(model, test)
            del model
            keras.backend.clear_session()
    results = {}
    for name, params in surprise_runs.items():
        results[name] = report(f"{name} (ML-100K, 90/10), fastest of {repeat}", "ratings",
                               len(train) * params.get("n_epochs", 20), min(seconds[name]),
                               rmse=round(rmses[name], 4), all_seconds=[round(t, 3) for t in seconds[name]], **params)
    for optimizer in optimizers:
        config = recipe(optimizer)
        ours = report(f"recsys.mf --optimizer {optimizer} (ML-100K, 90/10), fastest of {repeat}", "ratings",
                      len(train) * config.epochs, min(seconds[optimizer]), rmse=round(rmses[optimizer], 4),
                      all_seconds=[round(t, 3) for t in seconds[optimizer]], epochs=config.epochs,
                      batch_size=config.batch_size, factors=config.factors, lr=config.lr)
        for name, line in results.items():
            report(f"recsys.mf {optimizer} time / {name} time", "ratio", 1, 1.0,
                   ratio=round(ours["seconds"] / line["seconds"], 3), rmse_ours=ours["rmse"],
                   rmse_surprise=line["rmse"])


def compare_large(work_dir, ratings, fraction, epochs=1, optimizers=("sgd", "lazy_adam"), repeat=3):
    """Per epoch: ours the median and the fastest of the epochs after the first (which includes compiling);
    Surprise the mean epoch of its first `epochs`-epoch fit and of the fastest of `repeat` such fits (a fit's
    fixed costs spread over its epochs), each scaled to all the training ratings. The machine's speed changes
    from minute to minute, so the fastest against the fastest is the fairer ratio; both are printed."""
    directory = generate_movielens_large(Path(work_dir) / f"ml-25m-{ratings}", ratings, 162_541, 59_047)
    tic = time.perf_counter()
    data = read_movielens(directory, "ml-25m")
    report("read ratings.csv (generated, ML-25M size)", "ratings", len(data), time.perf_counter() - tic)
    train, test = split_random(data, 0.1, seed=0)
    del data
    size = f"ML-25M size, {len(train):,} training ratings"
    ours = {}
    for optimizer in optimizers:
        config = recipe(optimizer)
        model, seconds, per_epoch = ours_fit(train, config, epochs=epochs)
        later = per_epoch[1:] or per_epoch
        median = float(np.median(later))
        ours[optimizer] = report(
            f"recsys.mf --optimizer {optimizer}, {epochs} epoch(s) ({size})", "ratings", len(train) * epochs, seconds,
            epoch_seconds=round(median, 3), fastest_epoch_seconds=round(min(later), 3),
            first_epoch_seconds=round(per_epoch[0], 3), epoch_rate=round(len(train) / median),
            rmse=round(mf.rating_rmse(model, test), 4), epochs=epochs, batch_size=config.batch_size,
            factors=config.factors, lr=config.lr)
        del model
        keras.backend.clear_session()
    part = train.subset(np.random.default_rng(0).random(len(train)) < fraction) if fraction < 1 else train
    trainset = surprise_trainset(part)
    algo, seconds = surprise_fit(trainset, **{**TUNED, "n_epochs": epochs})
    line = report(f"surprise SVD tuned, {epochs} epoch(s) on {len(part) / len(train):.0%} of the ratings ({size})",
                  "ratings", len(part) * epochs, seconds, rmse=round(surprise_rmse(algo, trainset, test), 4),
                  epochs=epochs, **{k: v for k, v in TUNED.items() if k != "n_epochs"})
    scale = len(train) / len(part)
    per_epoch = seconds / epochs * scale
    fastest = min([seconds, *(surprise_fit(trainset, **{**TUNED, "n_epochs": epochs})[1]
                              for _ in range(repeat - 1))]) / epochs * scale
    report(f"surprise SVD tuned, one epoch ({size}), extrapolated linearly" if fraction < 1
           else f"surprise SVD tuned, one epoch ({size})", "ratings", len(train), per_epoch,
           fastest_epoch_seconds=round(fastest, 3), measured_ratings=len(part), extrapolated=fraction < 1)
    for optimizer, line_ours in ours.items():
        report(f"recsys.mf {optimizer} epoch time / surprise epoch time ({size})", "ratio", 1, 1.0,
               ratio=round(line_ours["epoch_seconds"] / per_epoch, 3),
               fastest_ratio=round(line_ours["fastest_epoch_seconds"] / fastest, 3),
               surprise_rate=round(len(train) / per_epoch), ours_rate=line_ours["epoch_rate"],
               rmse_ours=line_ours["rmse"], rmse_surprise=line["rmse"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="folder holding ML-100K's u.data")
    parser.add_argument("--large", action="store_true", help="also compare on ML-25M-sized generated data")
    parser.add_argument("--large-ratings", type=int, default=25_000_095, help="ratings of the generated data")
    parser.add_argument("--surprise-fraction", type=float, default=0.1,
                        help="fraction of the large training ratings Surprise trains on (1: all of them)")
    parser.add_argument("--large-epochs", type=int, default=1, help="epochs each model trains on the large data")
    parser.add_argument("--large-optimizers", default="sgd,lazy_adam",
                        help="comma-separated recsys.mf --optimizer values to time on the large data")
    parser.add_argument("--skip-ml100k", action="store_true", help="only the --large comparison")
    parser.add_argument("--repeat", type=int, default=3,
                        help="ML-100K: trainings of each, the fastest reported; --large: Surprise's fits")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="where the generated file goes (default: a temp dir)")
    args = parser.parse_args(argv)
    if not args.skip_ml100k:
        compare_ml100k(args.data_dir, args.repeat)
    if args.large:
        compare_large(args.work_dir or tempfile.mkdtemp(prefix="ml25m-"), args.large_ratings, args.surprise_fraction,
                      args.large_epochs, tuple(args.large_optimizers.split(",")), args.repeat)


if __name__ == "__main__":
    main()
