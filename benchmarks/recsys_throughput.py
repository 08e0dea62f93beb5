"""Recsys throughput: training examples/s of mf, neumf and deepfm, and evaluator users/s.

Runs on generated data of MovieLens-100K size (943 users, 1,682 items, ~100k ratings) and
on the generated CTR data, so it needs no download: `python -m benchmarks.recsys_throughput`.
One JSON line per measurement (benchmarks.harness).
"""
import tempfile
from pathlib import Path

import keras
import numpy as np

import common  # noqa: F401  (quiet TensorFlow import)
from benchmarks.harness import measure
from recsys import deepfm, fm, mf, neumf
from recsys.ctr import generate_ctr, load_ctr
from recsys.implicit import UserItemIndex
from recsys.movielens import generate_movielens, read_movielens
from recsys.splits import split_random, split_seq_aware
from common.data import epoch_dataset
from recsys.metrics import ranking_metrics
from recsys.ranking import pairwise_dataset


def _fit_once(model, dataset):
    return lambda: model.fit(dataset, epochs=1, verbose=0)


def main():
    keras.utils.set_random_seed(0)
    root = Path(tempfile.mkdtemp(prefix="recsys-bench-"))
    ratings = read_movielens(generate_movielens(root / "ml", 943, 1682, (40, 170)))
    train, test = split_random(ratings, 0.1, 0)
    size = {"users": ratings.num_users, "items": ratings.num_items}

    cfg = mf.Config()
    model = mf.build(cfg, train.num_users, train.num_items, float(train.ratings.mean()))
    data = epoch_dataset(((train.users, train.items), train.ratings), cfg.batch_size, 0, 0)
    measure("recsys.mf train", _fit_once(model, data), len(train), "examples", repeat=2,
            batch_size=cfg.batch_size, factors=cfg.factors, **size)

    train, test = split_seq_aware(ratings)
    cfg = neumf.Config()
    model = neumf.build(cfg, train.num_users, train.num_items)
    index = UserItemIndex.of(train)
    data = pairwise_dataset(train.users, train.users, train.items, index, cfg.batch_size, 0, 0)
    measure("recsys.neumf train (BPR triples)", _fit_once(model, data), len(train), "examples", repeat=2,
            batch_size=cfg.batch_size, factors=cfg.factors, hidden=cfg.hidden, **size)
    measure("recsys.neumf evaluate (HR@10/NDCG@10/AUC over all items)",
            lambda: neumf.report(model, train, test, 10), len(np.unique(test.users)), "users", repeat=2, **size)
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(943, 1682)).astype(np.float32)
    exclude = index.mask(np.arange(943))
    items = rng.integers(0, 1682, 943)
    measure("recsys.metrics ranking_metrics (scores given)", lambda: ranking_metrics(scores, items, exclude, 10),
            943, "users", repeat=3, **size)

    ctr_train, _ = load_ctr(generate_ctr(root / "ctr"))
    for name, module in (("fm", fm), ("deepfm", deepfm)):
        cfg = module.Config()
        model = fm.build(cfg, ctr_train, module.model_kwargs)
        data = epoch_dataset((ctr_train.features, ctr_train.labels), cfg.batch_size, 0, 0)
        measure(f"recsys.{name} train", _fit_once(model, data), len(ctr_train), "examples", repeat=2,
                batch_size=cfg.batch_size, fields=len(ctr_train.field_dims), features=ctr_train.num_features)


if __name__ == "__main__":
    main()
