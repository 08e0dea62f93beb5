"""`export` of the MovieLens recommenders (`recsys.mf`, `recsys.neumf`, `recsys.caser`): a SavedModel
that takes the data's own user ids and returns the top-k unrated items, as `predict` does.

The signature `serving_default` takes `user` `(b,)` (tf.int64 when the data's ids are integers, as
MovieLens', else tf.string) and returns `items` `(b, k)` (the data's item ids, same dtype rule) and
`scores` float32 `(b, k)`, best first: every item is scored (TensorFlow Recommenders' brute-force
top-k), the user's training items are set to -inf, and `tf.math.top_k` picks the k best (ties: the
lower dense index, as `predict`'s stable sort). A user with fewer than k unrated items gets the
padding item -1 (or "") with score -inf in the remaining places. A user id the run was not trained
on fails the request with an `InvalidArgumentError` naming it as an unknown user id (`predict`'s
one-line error), without stopping the server.

The id maps are the run's `ids.npz` (`recsys.movielens.load_id_maps`, checked against the data as
`predict` does); they are also written beside the SavedModel as `users.txt` and `items.txt`.
"""
import numpy as np
import tensorflow as tf

from recsys.criteo import NA

UNKNOWN_USER = "unknown user id: not a user of the data the run was trained on"


def _ids(ids):
    """(tf dtype, values as that dtype's NumPy array, padding id) of an id map."""
    ids = np.asarray(ids)
    if ids.dtype.kind in "iu":
        return tf.int64, ids.astype(np.int64), -1
    return tf.string, ids.astype(str).astype(object), ""


class TopUnrated(tf.Module):
    """The raw-id lookup, the training interactions and the top-k of one run (see the module docstring).

    `user_ids`, `item_ids`: the run's dense -> data id maps; `data`: its training `Interactions`
    (dense ids), whose items are excluded per user; `k`: items returned (at most the number of items).
    """

    def __init__(self, user_ids, item_ids, data, k):
        super().__init__()
        self.user_dtype, users, _ = _ids(user_ids)
        self.item_dtype, items, self.padding = _ids(item_ids)
        self.k = int(min(k, len(items)))
        init = tf.lookup.KeyValueTensorInitializer(tf.constant(users, self.user_dtype),
                                                   tf.constant(np.arange(len(users)), tf.int64))
        self.users = tf.lookup.StaticHashTable(init, default_value=-1)
        self.item_ids = tf.Variable(items, trainable=False, dtype=self.item_dtype, name="item_ids")
        order = np.argsort(data.users, kind="stable")
        counts = np.bincount(data.users, minlength=len(users))
        self.rated_items = tf.Variable(data.items[order].astype(np.int64), trainable=False, name="rated_items")
        self.rated_splits = tf.Variable(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), trainable=False,
                                        name="rated_splits")

    def dense_users(self, user):
        """Dense indices int32 `(b,)` of data user ids `(b,)`; an unknown id fails with `UNKNOWN_USER`."""
        dense = self.users.lookup(user)
        check = tf.debugging.assert_non_negative(dense, message=UNKNOWN_USER)
        with tf.control_dependencies([check]):
            return tf.cast(tf.identity(dense), tf.int32)

    def top_k(self, dense, scores):
        """{"items": data ids `(b, k)`, "scores": `(b, k)`} of the best unrated items of each dense user
        `(b,)` by `scores` float32 `(b, num_items)`."""
        dense = tf.cast(dense, tf.int64)
        positions = tf.ragged.range(tf.gather(self.rated_splits, dense), tf.gather(self.rated_splits, dense + 1))
        rated = tf.gather(self.rated_items, positions.flat_values)
        where = tf.stack([positions.value_rowids(), rated], axis=1)
        masked = tf.tensor_scatter_nd_update(scores, where, tf.fill(tf.shape(rated), float("-inf")))
        best = tf.math.top_k(masked, k=self.k)
        found = best.values > float("-inf")
        items = tf.where(found, tf.gather(self.item_ids, best.indices), tf.constant(self.padding, self.item_dtype))
        return {"items": items, "scores": best.values}


def export_top_k(ctx, model, data, scores_of, tracked=()):
    """Export `model` as the top-k recommender of `ctx`'s run to `ctx.args.out` (`common.export.write`):
    `scores_of(dense users int32 (b,)) -> (b, num_items)` scores every item as `predict` does; `data` is the
    run's training `Interactions` (its id maps checked against the run's `ids.npz`); `tracked`: other
    variables `scores_of` reads, saved with the model."""
    from common import export
    from recsys.movielens import load_id_maps

    user_ids, item_ids = load_id_maps(ctx.run_dir, data)
    module = TopUnrated(user_ids, item_ids, data, ctx.args.k)
    # the model's tf.Variables, not the Keras model: saving a Keras model traces its own serving signature
    module.model_variables = [v.value for v in model.variables] + list(tracked)

    @tf.function(input_signature=[tf.TensorSpec([None], module.user_dtype, name="user")])
    def serve(user):
        dense = module.dense_users(user)
        return module.top_k(dense, tf.cast(scores_of(dense), tf.float32))

    example = user_ids[0].item()
    kind = "int64" if module.user_dtype == tf.int64 else "string"
    readme = (f"{ctx.prog} export of {ctx.run_dir}: the top {module.k} items for each user among those the user "
              "has no training interaction with, best first (as predict).\n"
              f"  input  user: {kind} [None], the data's user ids (users.txt)\n"
              f"  output items: {'int64' if module.item_dtype == tf.int64 else 'string'} [None, {module.k}], the "
              f"data's item ids (items.txt); {module.padding!r} with score -inf where a user has fewer unrated "
              "items\n  output scores: float32 [None, k]\n"
              f"An unknown user id fails the request with InvalidArgumentError ({UNKNOWN_USER}).\n\n"
              "example:\n  import tensorflow as tf\n  model = tf.saved_model.load(DIR)\n"
              f"  model.signatures['serving_default'](user=tf.constant([{example!r}]"
              f"{', tf.int64' if kind == 'int64' else ''}))\n")
    files = {"users.txt": "".join(f"{u}\n" for u in user_ids.tolist()),
             "items.txt": "".join(f"{i}\n" for i in item_ids.tolist())}
    return export.write(ctx.args.out, module, {"serving_default": serve}, readme=readme, files=files)


def check_export(ctx):
    """Check the export flags before the run is restored (`common.export.options`); the recommenders export
    a SavedModel only (their hash-table lookups have no TFLite builtin)."""
    from common import export
    from common.errors import UsageError

    if export.options(ctx.args)["tflite"]:
        raise UsageError(f"{ctx.prog} exports a SavedModel only (TFLite has no builtin ops for its id lookup "
                         "tables); use --format saved_model")


# --- click-through rate: recsys.fm / recsys.deepfm ------------------------------------------------------------
NA_TOKEN = int(NA)  # the token of an empty Criteo field


def _number_tokens(values, floor):
    """Numeric fields' tokens as `recsys.criteo` / `recsys.tables.numeric_tokens` make them: float64 `(b, n)`
    -> int64, v > 2 -> floor(ln(v)^2), else v (cut toward zero for Criteo's integers, `floor` for a table's)."""
    small = tf.math.floor(values) if floor else values
    return tf.cast(tf.where(values > 2, tf.math.floor(tf.math.log(tf.maximum(values, 1.0)) ** 2), small), tf.int64)


def criteo_tokens(row):
    """Raw Criteo values `(b, 39)` tf.string (13 integers, 26 hex categoricals, "" for empty) -> int64 tokens
    `(b, 39)` as `recsys.criteo.raw_tokens`; a categorical that is not 8 hex digits fails the request."""
    ints, cats = row[:, :13], row[:, 13:]
    empty = ints == ""
    numbers = tf.strings.to_number(tf.where(empty, "0", ints), tf.float64)
    int_tokens = tf.where(empty, tf.constant(NA_TOKEN, tf.int64), _number_tokens(numbers, floor=False))
    empty = cats == ""
    valid = tf.reduce_all(empty | tf.strings.regex_full_match(cats, "[0-9a-fA-F]{8}"))
    check = tf.debugging.Assert(valid, ["a Criteo categorical value is not 8 hex digits (or empty)"])
    with tf.control_dependencies([check]):
        chars = tf.cast(tf.io.decode_raw(tf.where(empty, "00000000", cats), tf.uint8, fixed_length=8), tf.int64)
    nibbles = tf.where(chars <= ord("9"), chars - ord("0"), tf.bitwise.bitwise_or(chars, 32) - ord("a") + 10)
    values = tf.reduce_sum(nibbles * tf.constant(16 ** np.arange(7, -1, -1), tf.int64), axis=-1)
    return tf.concat([int_tokens, tf.where(empty, tf.constant(NA_TOKEN, tf.int64), values)], axis=1)


def table_tokens(row, numeric):
    """Raw values of a `--dataset table` row `(b, fields)` tf.string, the `numeric` columns first -> tf.string
    tokens (`recsys.tables.numeric_tokens` for the numeric ones: "" when empty; the categorical text as is)."""
    numbers, empty = row[:, :numeric], row[:, :numeric] == ""
    tokens = tf.strings.as_string(_number_tokens(tf.strings.to_number(tf.where(empty, "0", numbers), tf.float64),
                                                 floor=True))
    return tf.concat([tf.where(empty, "", tokens), row[:, numeric:]], axis=1)


class FieldLookup(tf.Module):
    """`recsys.ctr.FieldVocabulary.encode` in the graph: per field, a hash table from the kept values to their
    global feature ids (offset included); other values go to the field's bucket (its last id)."""

    def __init__(self, vocabulary):
        super().__init__()
        self.tables = []
        for known, offset in zip(vocabulary.values, vocabulary.offsets):
            dtype = tf.int64 if np.asarray(known).dtype.kind in "iu" else tf.string
            keys = np.asarray(known).astype(np.int64 if dtype == tf.int64 else str)
            init = tf.lookup.KeyValueTensorInitializer(tf.constant(keys, dtype),
                                                       tf.constant(np.arange(len(keys)) + int(offset), tf.int64))
            self.tables.append(tf.lookup.StaticHashTable(init, default_value=int(offset) + len(keys)))

    def encode(self, tokens):
        """Tokens `(b, fields)` (int64 or tf.string) -> int32 global feature ids `(b, fields)`."""
        return tf.cast(tf.stack([table.lookup(tokens[:, f]) for f, table in enumerate(self.tables)], axis=1),
                       tf.int32)


def export_clicks(ctx, model, vocabulary):
    """Export the run's FM / DeepFM `model` to `ctx.args.out` (`common.export.write`): input `row`, tf.string
    `(b, fields)`, the raw values of a row as the data holds them (the book's CTR: 34 values; Criteo: 13
    integers then 26 hex categoricals, "" for empty; a table: the --numeric then --categorical columns);
    output `probability` float32 `(b,)`, the click probability. Tokens and the run's `vocabulary` lookup
    (rare and unseen values: the field's bucket) run in the graph, as `predict`."""
    from common import export

    cfg = ctx.config
    fields = len(vocabulary.values)
    numeric = len([c for c in cfg.numeric.split(",") if c.strip()])
    tokens = {"criteo": criteo_tokens, "table": lambda row: table_tokens(row, numeric)}.get(cfg.dataset,
                                                                                              lambda row: row)
    module = FieldLookup(vocabulary)
    module.model_variables = [v.value for v in model.variables]  # not the Keras model (see export_top_k)

    @tf.function(input_signature=[tf.TensorSpec([None, fields], tf.string, name="row")])
    def serve(row):
        logits = tf.cast(model(module.encode(tokens(row)), training=False), tf.float32)
        return {"probability": tf.math.sigmoid(logits)}

    layout = {"criteo": "13 integers then 26 categoricals of 8 hex digits (Criteo's train.txt without the label)",
              "table": f"the --numeric columns ({cfg.numeric}) then the --categorical ones ({cfg.categorical})",
              "ctr": "the 34 values of a line of the book's CTR data without the label"}[cfg.dataset]
    readme = (f"{ctx.prog} export of {ctx.run_dir}: the click probability of rows of raw values.\n"
              f"  input  row: string [None, {fields}], {layout}; \"\" for an empty value\n"
              "  output probability: float32 [None]\n"
              "Values unseen (or rare) in training share their field's bucket, as in predict.\n\n"
              "example:\n  import tensorflow as tf\n  model = tf.saved_model.load(DIR)\n"
              f"  model.signatures['serving_default'](row=tf.constant([[{', '.join(['...'] * 3)}]]))  "
              f"# {fields} strings a row\n")
    return export.write(ctx.args.out, module, {"serving_default": serve}, readme=readme)
