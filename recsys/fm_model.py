"""The factorization machine's model, data pipeline, training and evaluation (`recsys.fm` is its command
and configuration); `recsys.deepfm_model` reuses all of it with its own builder.

The model and everything that needs TensorFlow live here, so `python -m recsys.fm --help` and a
usage error answer without loading it.
"""
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import ops
from sklearn.metrics import log_loss, roc_auc_score

from common import distribute, training
from common.data import epoch_dataset
from common.errors import DatasetError, DlsuiteError, UsageError
from common.models import ScaledLossModel
from recsys import criteo
from recsys.ctr import CTR_FIELDS, CTRData, FieldVocabulary, ctr_dir, load_ctr, raw_rows
from recsys.splits import split_rows
from recsys.tables import find_table, numeric_tokens, read_click_table


@keras.saving.register_keras_serializable(package="dlsuite")
class FactorizationMachine(ScaledLossModel):
    """Click logits `(batch,)` from global feature ids `(batch, fields)`.

    With `hidden` layer widths it is DeepFM: an MLP over the concatenated field
    embeddings (the same `v` the FM uses) adds its output to the FM logit.
    """

    def __init__(self, num_features, factors=10, interactions=True, hidden=(), dropout=0.0, weight_decay=0.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.num_features, self.factors, self.interactions = num_features, factors, interactions
        self.hidden, self.dropout, self.weight_decay = list(hidden), dropout, weight_decay
        self.linear = keras.layers.Embedding(num_features, 1, embeddings_initializer="zeros")
        self.bias = self.add_weight(shape=(), initializer="zeros", name="bias")
        # Logistic regression (no interactions, no MLP) has no factor table at all.
        self.embedding = keras.layers.Embedding(
            num_features, factors, embeddings_initializer=keras.initializers.RandomNormal(stddev=0.01)
        ) if (interactions or self.hidden) else None
        self.deep = [keras.layers.Dense(width, activation="relu") for width in self.hidden]
        self.deep_dropout = keras.layers.Dropout(dropout)
        self.deep_out = keras.layers.Dense(1) if self.hidden else None

    def build(self, input_shape):
        """Build every part before the first call (the MLP's input width comes from the fields)."""
        self.linear.build(input_shape)
        if self.embedding is not None:
            self.embedding.build(input_shape)
        width = input_shape[-1] * self.factors
        for layer in self.deep:
            layer.build((None, width))
            width = layer.units
        if self.deep_out is not None:
            self.deep_out.build((None, width))
        super().build(input_shape)

    def call(self, features, training=False):
        logit = self.bias + ops.sum(self.linear(features)[..., 0], axis=-1)
        if self.embedding is None:
            return logit
        v = self.embedding(features)  # (batch, fields, factors)
        if self.interactions:
            logit = logit + 0.5 * ops.sum(ops.square(ops.sum(v, axis=1)) - ops.sum(v * v, axis=1), axis=-1)
        if self.hidden:
            h = ops.reshape(v, (-1, v.shape[1] * self.factors))
            for layer in self.deep:
                h = self.deep_dropout(layer(h), training=training)
            logit = logit + self.deep_out(h)[:, 0]
        return logit

    def training_loss(self, batch):
        """Mean binary cross-entropy + weight_decay x mean squared norm of the batch's embeddings."""
        features, labels = batch
        logits = self(features, training=True)
        loss = ops.mean(ops.maximum(logits, 0) - logits * labels + ops.log1p(ops.exp(-ops.abs(logits))))
        if self.weight_decay and self.embedding is not None:
            v = self.embedding(features)
            loss = loss + self.weight_decay * ops.mean(ops.sum(v * v, axis=(1, 2)))
        return loss

    def get_config(self):
        return {**super().get_config(), "num_features": self.num_features, "factors": self.factors,
                "interactions": self.interactions, "hidden": self.hidden, "dropout": self.dropout,
                "weight_decay": self.weight_decay}


def model_kwargs(config):
    """FactorizationMachine arguments from an FM config (DeepFM's config adds hidden and dropout)."""
    return {"factors": config.factors, "interactions": config.interactions, "weight_decay": config.weight_decay}


def build(config, train_set, kwargs_of=model_kwargs):
    """The compiled FactorizationMachine of `config` (its arguments `kwargs_of(config)`) for `train_set`'s features."""
    model = FactorizationMachine(train_set.num_features, **kwargs_of(config))
    model.compile(keras.optimizers.Adam(config.lr))
    model(train_set.features[:1])
    return model


VOCABULARY = "vocabulary.npz"  # in the run directory: the raw values -> feature ids map the model was trained on
CRITEO_DEMO_ROWS = 60_000  # changing it changes the demo file: bump criteo.GENERATOR_VERSION


def criteo_file(ctx):
    """The Criteo file to read: --data-dir/--data-file, or (--demo) a generated one in the cache."""
    cfg = ctx.config
    if ctx.demo:
        path = criteo.demo_file()
        return path if path.exists() else criteo.generate_criteo(path, CRITEO_DEMO_ROWS)
    if ctx.data_dir is None:
        raise UsageError("--dataset criteo needs --data-dir holding the Criteo file (and --data-file, "
                         f"default {cfg.data_file}), or --demo")
    return Path(ctx.data_dir) / cfg.data_file


def load(ctx):
    """(fit, validation, test) CTRData for the config's dataset; validation rows come out of training.

    Criteo goes through `recsys.criteo.prepare_criteo` (one streaming pass, cached): its parts
    are memory maps, read back in blocks by `dataset`.
    """
    cfg = ctx.config
    if cfg.dataset == "ctr":
        train_set, test_set = load_ctr(ctr_dir(ctx.data_dir, ctx.demo), cfg.threshold)
        return (*split_rows(train_set, cfg.val_ratio, cfg.seed), test_set)
    if cfg.dataset == "table":
        return load_table(ctx)
    cache = criteo.prepare_criteo(criteo_file(ctx), cfg.threshold, cfg.test_ratio, cfg.val_ratio, cfg.seed)
    return tuple(cache.part(name) for name in criteo.PARTS)


def click_table(ctx):
    """(path, format) of the `--dataset table` file: --data-dir/--data-file, else the only table in --data-dir."""
    cfg = ctx.config
    if ctx.demo or ctx.data_dir is None:
        raise UsageError("--dataset table reads your table: pass --data-dir (and --data-file if it holds several)")
    given = cfg.data_file if (Path(ctx.data_dir) / cfg.data_file).is_file() else ""
    return find_table(ctx.data_dir, cfg.format, given)


def load_table(ctx):
    """(fit, validation, test) CTRData of a `--dataset table` file: rows drawn into the parts as Criteo's are
    (`criteo.row_uniforms`, by row index and seed), the vocabulary counted on the training rows (fit and
    validation) with `--threshold`, as `criteo.prepare_criteo` does."""
    cfg = ctx.config
    labels, raw = read_click_table(*click_table(ctx), cfg.label, cfg.numeric, cfg.categorical)
    parts = criteo._assign_parts(criteo.row_uniforms(cfg.seed, 0, len(labels)), cfg.test_ratio, cfg.val_ratio)
    vocabulary = FieldVocabulary(raw[parts != 2], cfg.threshold)
    features = vocabulary.encode(raw)
    out = tuple(CTRData(features[parts == p], labels[parts == p], vocabulary.field_dims, vocabulary) for p in range(3))
    for name, part in zip(criteo.PARTS, out):
        if not len(part):
            raise DatasetError(f"{len(labels)} rows give no {name} rows with --test-ratio {cfg.test_ratio} and "
                               f"--val-ratio {cfg.val_ratio}; use more rows")
    return out


def dataset(config, fit, epoch, strategy=None):
    """The epoch's training batches: in memory (`epoch_dataset`) or, for memory-mapped Criteo parts,
    `criteo.block_dataset` (blocks of rows, bounded memory) through `distribute.distribute_own_input`:
    over several replicas or workers each trains on its piece of every global batch of `--batch-size`,
    the same batches in the same order as on one replica."""
    if not isinstance(fit.features, np.memmap):
        return epoch_dataset((fit.features, fit.labels), config.batch_size, config.seed, epoch)
    return distribute.distribute_own_input(
        strategy or tf.distribute.get_strategy(), config.batch_size,
        lambda shard: criteo.block_dataset(fit, config.batch_size, config.seed, epoch,
                                           replicas=(shard.first, shard.count, shard.total)))


def click_probabilities(model, features):
    """Click probabilities `(rows,)` float64, predicted block by block (features may be a memory map)."""
    logits = criteo.predict_blocks(lambda x: model.predict(x, batch_size=8192, verbose=0), features)
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64)))


def ctr_report(model, rows):
    """AUC and log loss of the click probabilities on `rows` (CTRData), by `sklearn.metrics`."""
    p = click_probabilities(model, rows.features)
    labels = np.asarray(rows.labels)
    if len(np.unique(labels)) < 2:
        raise DlsuiteError(f"{len(rows)} held-out rows hold only one label; AUC needs clicks and non-clicks")
    return {"auc": float(roc_auc_score(labels, p)), "logloss": float(log_loss(labels, p, labels=[0, 1]))}


def restore(ctx, train_set, build_model=build):
    """The run's model (newest checkpoint), built by `build_model(config, train_set)` for `train_set`'s features."""
    model = build_model(ctx.config, train_set)
    ctx.restore(model)
    return model


def train(ctx, build_model=build):
    """Train the model `build_model(config, train_set)` builds (FM here; `recsys.deepfm_model` passes DeepFM's),
    validating every epoch; AUC and log loss of the test rows at the end."""
    cfg = ctx.config
    fit, val, test = load(ctx)
    with ctx.strategy.scope():
        model = build_model(cfg, fit)
    run = ctx.run()
    if run.chief and not run.resume:  # a resumed run keeps its own (its data was checked to be the same)
        fit.vocabulary.save(run.file(VOCABULARY))

    def on_epoch_end(epoch, logs):
        return {f"val_{k}": v for k, v in ctr_report(model, val).items()}

    history = training.fit(model, lambda epoch: dataset(cfg, fit, epoch, ctx.strategy), run, epochs=cfg.epochs,
                           on_epoch_end=on_epoch_end)
    last = history[-1]
    return {"loss": last["loss"], "val_auc": last["val_auc"], "val_logloss": last["val_logloss"],
            **ctr_report(model, test), "train_rows": len(fit), "val_rows": len(val), "test_rows": len(test),
            "features": fit.num_features}


def evaluate(ctx, build_model=build):
    """Rebuild the run's model (`build_model`) from its config, restore it, and score the test rows."""
    fit, _, test = load(ctx)
    model = restore(ctx, fit, build_model)
    return {**ctr_report(model, test), "test_rows": len(test)}


def rows_to_features(dataset, vocabulary, lines, what, config=None):
    """Lines in the format of `dataset` ("ctr", "criteo" or "table") -> int32 `(rows, fields)` feature ids of
    `vocabulary`. A table's lines hold the run `config`'s --numeric then --categorical values, comma separated
    (after the label, if any)."""
    if dataset == "ctr":
        return vocabulary.encode(raw_rows(lines, CTR_FIELDS, what))
    if dataset == "table":
        numeric = len([c for c in config.numeric.split(",") if c.strip()])
        raw = raw_rows(lines, len(vocabulary.values), what)
        if numeric:
            values = raw[:, :numeric]
            numbers = np.full(values.shape, np.nan)
            given = values != ""
            try:
                numbers[given] = values[given].astype(np.float64)
            except ValueError:
                raise DatasetError(f"{what}: the first {numeric} values of a row are the numeric columns "
                                   f"({config.numeric}); a value is not a number") from None
            raw[:, :numeric] = np.stack([numeric_tokens(numbers[:, c]) for c in range(numeric)], axis=1)
        return vocabulary.encode(raw)
    raw = raw_rows(lines, criteo.FIELDS, what)
    try:
        return vocabulary.encode(criteo.raw_tokens(raw))
    except DlsuiteError as e:
        raise type(e)(f"{what} {e}") from None


def run_vocabulary(ctx):
    """The raw values -> feature ids map of the run (its vocabulary.npz; for a run without one, the data's)."""
    path = Path(ctx.run_dir) / VOCABULARY
    return FieldVocabulary.load(path) if path.exists() else load(ctx)[0].vocabulary


def predict(ctx, build_model=build):
    """Click probabilities of the `--row` lines and then of the lines of `--data FILE`, each a row of the
    run's data format (the label, if present, is ignored) encoded with the run's vocabulary (values unseen
    or rare in training share their field's bucket)."""
    args = ctx.args
    if not args.row and args.data is None:
        raise UsageError("give the rows to score: --row LINE [LINE ...] and/or --data FILE")
    cfg = ctx.config
    features = []
    if args.row:
        vocabulary = run_vocabulary(ctx)
        features.append(rows_to_features(cfg.dataset, vocabulary, args.row, "--row", cfg))
    if args.data is not None:
        if not args.data.is_file():
            raise UsageError(f"--data {args.data}: no such file")
        vocabulary = run_vocabulary(ctx)
        if cfg.dataset == "table":  # a table with the run's feature columns (a label column is not needed)
            kind = cfg.format if cfg.format != "auto" else find_table(args.data.parent, "auto", args.data.name)[1]
            features.append(vocabulary.encode(read_click_table(args.data, kind, None, cfg.numeric,
                                                               cfg.categorical)[1]))
        else:
            with open(args.data, encoding="latin-1") as f:
                features.append(rows_to_features(cfg.dataset, vocabulary, f, str(args.data), cfg))
    features = np.concatenate(features)
    model = restore(ctx, CTRData(features, np.zeros(len(features), np.float32), vocabulary.field_dims), build_model)
    return {"rows": len(features), "probabilities": np.round(click_probabilities(model, features), 6).tolist()}


def export(ctx, build_model=build):
    """A SavedModel of the run (`recsys.serving.export_clicks`): a row of raw values in, as the data holds them,
    the click probability out; the tokens and the run's vocabulary lookup run in the graph, as `predict`."""
    from recsys import serving

    serving.check_export(ctx)
    vocabulary = run_vocabulary(ctx)
    fields = len(vocabulary.values)
    model = restore(ctx, CTRData(np.zeros((1, fields), np.int32), np.zeros(1, np.float32), vocabulary.field_dims),
                    build_model)
    return serving.export_clicks(ctx, model, vocabulary)
