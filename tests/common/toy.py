"""A tiny regression model wired through the spine, used by the spine's own tests."""
import signal
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from common import cli, training
from common.data import shuffle_for_epoch
from common.errors import DatasetError


@dataclass
class ToyConfig(cli.TrainConfig):
    RESUME_MAY_CHANGE = ("epochs", "interrupt_at")  # a test's Ctrl-C, not a setting of the run

    epochs: int = 4
    batch_size: int = 16
    lr: float = 0.05
    hidden: int = field(default=8, metadata=cli.at_least(1, "hidden units"))
    optimizer: str = field(default="adam", metadata={"choices": ["adam", "sgd"], "help": "optimizer"})
    dropout: float = field(default=0.0, metadata=cli.bounds("[0, 1)", "dropout after the hidden layer"))
    cosine: bool = field(default=False, metadata={"help": "cosine learning-rate decay over the run"})
    widths: tuple = field(default=(3, 2), metadata=cli.int_list("a list flag, parsed once"))
    interrupt_at: int = field(default=0, metadata=cli.bounds("[0, inf)", "send Ctrl-C after this epoch (tests)"))


def load(data_dir):
    """Read x.npy / y.npy from data_dir, or generate y = sum(x) + noise (seeded) when None."""
    if data_dir is None:
        rng = np.random.default_rng(0)
        x = rng.normal(size=(128, 4)).astype("float32")
        return x, (x.sum(1, keepdims=True) + 0.01 * rng.normal(size=(128, 1))).astype("float32")
    if not (data_dir / "x.npy").exists():
        raise DatasetError(f"{data_dir / 'x.npy'} not found")
    return np.load(data_dir / "x.npy"), np.load(data_dir / "y.npy")


def build(config, steps_per_epoch=8):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(config.hidden, activation="tanh"),
                              keras.layers.Dropout(config.dropout), keras.layers.Dense(1)])
    lr = training.CosineSchedule(config.lr, config.epochs * steps_per_epoch, alpha=0.1) if config.cosine else config.lr
    opt = keras.optimizers.Adam(lr) if config.optimizer == "adam" else keras.optimizers.SGD(lr)
    model.compile(opt, "mse")
    return model


def train(ctx):
    cfg = ctx.config
    x, y = load(ctx.data_dir)
    with ctx.strategy.scope():
        model = build(cfg, steps_per_epoch=-(-len(x) // cfg.batch_size))
    run = ctx.run()
    data = lambda epoch: shuffle_for_epoch(tf.data.Dataset.from_tensor_slices((x, y)), len(x),
                                           cfg.seed, epoch).batch(cfg.batch_size)

    def on_epoch_end(epoch, logs):
        if epoch + 1 == cfg.interrupt_at:
            signal.raise_signal(signal.SIGINT)
        return {"lr": float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))}

    history = training.fit(model, data, run, epochs=cfg.epochs, on_epoch_end=on_epoch_end, verbose=0)
    return {"loss": history[-1]["loss"]}


def evaluate(ctx):
    x, y = load(ctx.data_dir)
    model = build(ctx.config)
    ctx.restore(model)
    return {"mse": float(model.evaluate(x, y, verbose=0))}


COMMANDS = {"train": cli.Command(train, "train the toy model", trains=True),
            "evaluate": cli.Command(evaluate, "evaluate the toy model")}


def main(argv=None):
    return cli.main("toy model", ToyConfig, COMMANDS, demo={"epochs": 2}, argv=argv)
