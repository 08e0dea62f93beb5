"""One MultiWorkerMirroredStrategy worker for test_multiworker: trains the toy model, saves its weights.

Usage (TF_CONFIG set by the caller): python -m tests.common.mw_worker OUT.npz RUN_DIR
"""
import sys

import numpy as np
import tensorflow as tf

from common import distribute, training
from common.data import shuffle_for_epoch
from tests.common import toy


def main(out, run_dir):
    strategy = distribute.make_strategy("auto")  # TF_CONFIG is set: multi-worker
    assert isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    cfg = toy.ToyConfig(epochs=3, batch_size=16)
    training.set_seed(cfg.seed)
    x, y = toy.load(None)
    with strategy.scope():
        model = toy.build(cfg)
    run = training.Run(run_dir, chief=distribute.is_chief(strategy))
    data = lambda epoch: shuffle_for_epoch(tf.data.Dataset.from_tensor_slices((x, y)), 128, cfg.seed,
                                           epoch).batch(cfg.batch_size)
    history = training.fit(model, data, run, epochs=cfg.epochs, verbose=0, save_model=run.chief)
    np.savez(out, *model.get_weights(), losses=np.array([h["loss"] for h in history]),
             replicas=strategy.num_replicas_in_sync)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
