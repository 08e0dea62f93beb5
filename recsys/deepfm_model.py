"""DeepFM's model builder, training and evaluation (`recsys.deepfm` is its command and configuration).

DeepFM is `recsys.fm_model.FactorizationMachine` with `hidden` MLP widths; its data, training
and evaluation are FM's, given this module's `build`.
"""
from recsys import fm_model


def model_kwargs(config):
    """FactorizationMachine arguments of a DeepFM config: FM's, plus the MLP's widths and dropout."""
    return {**fm_model.model_kwargs(config), "hidden": config.hidden, "dropout": config.dropout}


def build(config, train_set):
    """The compiled DeepFM of `config` for `train_set`'s features."""
    return fm_model.build(config, train_set, model_kwargs)


def restore(ctx, train_set):
    """The run's model (newest checkpoint), built for `train_set`'s features."""
    return fm_model.restore(ctx, train_set, build)


def train(ctx):
    return fm_model.train(ctx, build)


def evaluate(ctx):
    return fm_model.evaluate(ctx, build)


def predict(ctx):
    return fm_model.predict(ctx, build)


def export(ctx):
    return fm_model.export(ctx, build)
