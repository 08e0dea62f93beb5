"""One MultiWorkerMirroredStrategy worker for test_multiworker: trains the toy model, saves its weights.

Usage (TF_CONFIG set by the caller): python -m tests.common.mw_worker OUT.npz RUN_DIR [own]

With `own` the worker shards its input itself through `common.distribute.distribute_own_input` (each
pipeline slicing its pieces of every global batch out of the arrays) and also saves the rows each of
its replicas trained on in every step of the first epoch (`replica_rows`, steps x local replicas).
"""
import sys

import numpy as np
import tensorflow as tf

from common import distribute, training
from common.data import epoch_rng, shuffle_for_epoch
from tests.common import toy


def own_pieces(x, y, batch_size, seed, epoch, shard):
    """The toy data in a seeded order, cut into global batches of `batch_size`: `shard`'s pieces of each."""
    order = epoch_rng(seed, epoch).permutation(len(x))
    rows = [order[start + (shard.first + r) * shard.replica_batch:][:shard.replica_batch]
            for start in range(0, len(x), batch_size) for r in range(shard.count)]
    return tf.data.Dataset.from_tensor_slices((np.stack([x[i] for i in rows]), np.stack([y[i] for i in rows])))


def main(out, run_dir, mode="tf.data"):
    strategy = distribute.make_strategy("auto")  # TF_CONFIG is set: multi-worker
    assert isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    cfg = toy.ToyConfig(epochs=3, batch_size=16)
    training.set_seed(cfg.seed)
    x, y = toy.load(None)
    with strategy.scope():
        model = toy.build(cfg)
    run = training.Run(run_dir, chief=distribute.is_chief(strategy))
    if mode == "own":
        data = lambda epoch: distribute.distribute_own_input(
            strategy, cfg.batch_size, lambda shard: own_pieces(x, y, cfg.batch_size, cfg.seed, epoch, shard))
    else:
        data = lambda epoch: shuffle_for_epoch(tf.data.Dataset.from_tensor_slices((x, y)), 128, cfg.seed,
                                               epoch).batch(cfg.batch_size)
    extra = {}
    if mode == "own":
        extra["replica_rows"] = np.array([[int(t.shape[0]) for t in strategy.experimental_local_results(batch[1])]
                                          for batch in data(0)])
    history = training.fit(model, data, run, epochs=cfg.epochs, verbose=0, save_model=run.chief)
    np.savez(out, *model.get_weights(), losses=np.array([h["loss"] for h in history]),
             replicas=strategy.num_replicas_in_sync, iterations=int(model.optimizer.iterations.numpy()), **extra)


if __name__ == "__main__":
    main(*sys.argv[1:])
