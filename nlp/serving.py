"""The text preprocessing of `predict`, as TensorFlow ops for the exported classifiers (`export`).

An exported `nlp.sentiment` or `nlp.nli` model reads raw strings: the tokenizer, the vocabulary
lookup, truncation and padding run inside the SavedModel's graph, so serving it needs TensorFlow
only. Each function reproduces its Python twin token for token:

- `review_tokens`: `nlp.imdb.tokenize_review` (lower-cased, `<br />` removed, runs of ASCII
  letters/digits and each `!` / `?`);
- `whitespace_tokens`: `str.lower().split()` of `nlp.nli` (Python's whitespace, Unicode included);
- `VocabTable`: `Vocab` lookup (unknown words -> `<unk>`, index 0), `encode_padded`'s truncation to
  `max_len` and right padding with `<pad>`, and `coverage`'s word counts.

A text with no tokens (e.g. the empty string) becomes a row of padding only: the model's output on
it is defined (its answer on no evidence), and `words` is 0 so a client can tell.
"""
import numpy as np
import tensorflow as tf

# Python's str.split() whitespace: ASCII \t\n\v\f\r, space, \x1c-\x1f, and Unicode's spaces and separators
_PY_WHITESPACE = r"[\t\n\x{0b}\f\r \x{1c}-\x{1f}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}" \
                 r"\x{205f}\x{3000}]+"


def review_tokens(text):
    """Tokens of `nlp.imdb.tokenize_review` for a batch of strings `(b,)`: a ragged `(b, None)` tf.string."""
    lowered = tf.strings.lower(text, encoding="utf-8")
    spaced = tf.strings.regex_replace(lowered, "<br />", " ")
    spaced = tf.strings.regex_replace(spaced, "([!?])", " \\1 ")
    spaced = tf.strings.regex_replace(spaced, "[^a-z0-9!?]+", " ")
    return _split(spaced)


def whitespace_tokens(text):
    """Tokens of `text.lower().split()` for a batch of strings `(b,)`: a ragged `(b, None)` tf.string."""
    return _split(tf.strings.regex_replace(tf.strings.lower(text, encoding="utf-8"), _PY_WHITESPACE, " "))


def _split(spaced):
    """Split single-space-separated strings `(b,)`, dropping the empty pieces of leading/trailing spaces."""
    pieces = tf.strings.split(spaced, sep=" ")
    return tf.ragged.boolean_mask(pieces, tf.strings.length(pieces) > 0)


class VocabTable(tf.Module):
    """A run's vocabulary (`tokens` in index order, `<unk>` at 0) as a hash table inside the graph.

    `encode(tokens)` turns a ragged `(b, None)` batch of tokens into int32 ids `(b, max_len)`: each row
    cut to `max_len` tokens and padded on the right with `pad_id` (`nlp.text.encode_padded`), and
    returns the words read `(b,)` and those of them the vocabulary does not know (`nlp.text.coverage`:
    unknown words and the reserved tokens `<unk>` / `<pad>` typed as text).
    """

    def __init__(self, tokens, pad_id, max_len):
        super().__init__()
        self.pad_id, self.max_len = int(pad_id), int(max_len)
        init = tf.lookup.KeyValueTensorInitializer(tf.constant(list(tokens), tf.string),
                                                   tf.constant(np.arange(len(tokens)), tf.int64))
        self.table = tf.lookup.StaticHashTable(init, default_value=0)

    def encode(self, tokens):
        kept = tokens[:, :self.max_len]
        ids = tf.ragged.map_flat_values(self.table.lookup, kept)
        words = tf.cast(kept.row_lengths(), tf.int32)
        unknown = tf.reduce_sum(tf.cast((ids == 0) | (ids == self.pad_id), tf.int32), axis=1)
        padded = tf.cast(ids.to_tensor(default_value=self.pad_id, shape=[None, self.max_len]), tf.int32)
        return padded, words, unknown


def saved_model_only(ctx):
    """Check the export flags (`common.export.options`: --out new or empty, ...) before the run is
    restored; `--format tflite` is a UsageError, since TFLite has no builtin ops for the string
    tokenizer and the hash-table lookups in the graph."""
    from common import export
    from common.errors import UsageError

    if export.options(ctx.args)["tflite"]:
        raise UsageError(f"{ctx.prog} exports a SavedModel only (TFLite has no builtin ops for the tokenizer "
                         "in its graph); use --format saved_model")


def class_names(run_dir, default):
    """The class names a run was trained with: its `classes.json` (a JSON list in index order) when
    present, else `default` (the model's fixed names)."""
    import json
    from pathlib import Path

    from common.errors import DatasetError

    path = Path(run_dir) / "classes.json"
    if not path.exists():
        return list(default)
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path} is not a JSON list of class names ({e}); restore the run's own file") from None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DatasetError(f"{path} is not a JSON list of class names; restore the run's own file")
    return names


def export_classifier(ctx, model, num_classes, tokens, inputs, tokenize, names, example):
    """Export the run's text classifier `model` to `ctx.args.out` (`common.export.write`).

    `num_classes`: the model's output width, one per name of `names`. `inputs`: the names of its
    raw-string inputs (`("text",)`, `("premise", "hypothesis")`), each tokenized by `tokenize` and
    encoded over the vocabulary `tokens` (`VocabTable`, `<pad>` from it, `--max-len` of the run) into
    the model's input: the ids of a lone input, else a dict by name. The
    `serving_default` signature returns `probabilities` float32 `(b, classes)` (softmax of the logits),
    `label` tf.string `(b,)` (the class name of the argmax), and `words` / `unknown_words` int32 `(b,)`
    summed over the inputs (`predict`'s coverage counts). `example`: one input dict for the README.
    """
    from common import export
    from common.errors import UsageError
    from nlp.classify import PAD

    if len(names) != num_classes:
        raise UsageError(f"the run's model has {num_classes} classes but {len(names)} class names; restore its "
                         "classes.json")
    module = tf.Module()
    module.vocab = VocabTable(tokens, tokens.index(PAD), ctx.config.max_len)
    # the model's tf.Variables, not the Keras model: saving a Keras model traces its own serving signature
    module.model_variables = [v.value for v in model.variables]
    label_names = tf.constant(names)

    def outputs(**texts):
        encoded = {name: module.vocab.encode(tokenize(texts[name])) for name in inputs}
        ids = {name: e[0] for name, e in encoded.items()}
        probabilities = tf.nn.softmax(model(ids[inputs[0]] if len(inputs) == 1 else ids, training=False), axis=-1)
        return {"probabilities": probabilities, "label": tf.gather(label_names, tf.argmax(probabilities, axis=-1)),
                "words": tf.add_n([e[1] for e in encoded.values()]),
                "unknown_words": tf.add_n([e[2] for e in encoded.values()])}

    specs = {name: tf.TensorSpec([None], tf.string, name=name) for name in inputs}
    if len(inputs) == 1:
        serve = tf.function(lambda text: outputs(text=text), input_signature=[specs["text"]])
    else:
        serve = tf.function(lambda premise, hypothesis: outputs(premise=premise, hypothesis=hypothesis),
                            input_signature=[specs["premise"], specs["hypothesis"]])
    call = ", ".join(f"{k}=tf.constant([{v!r}])" for k, v in example.items())
    readme = (f"{ctx.prog} export of {ctx.run_dir}\n\n"
              f"signature serving_default\n"
              f"  inputs:  {', '.join(f'{n}: tf.string [None]' for n in inputs)} (raw text; tokenized in the graph)\n"
              f"  outputs: probabilities: float32 [None, {len(names)}] (columns: {', '.join(names)})\n"
              f"           label: tf.string [None] (the most probable class name)\n"
              f"           words, unknown_words: int32 [None] (tokens read, of them not in the vocabulary;"
              f" at most --max-len {ctx.config.max_len} per input)\n"
              f"A text without words reads as padding only: a defined answer with words = 0.\n\n"
              f"example:\n  import tensorflow as tf\n"
              f"  model = tf.saved_model.load(DIR)\n  model.signatures['serving_default']({call})\n")
    files = {"labels.txt": "".join(f"{n}\n" for n in names), "vocab.txt": "".join(f"{t}\n" for t in tokens)}
    return export.write(ctx.args.out, module, {"serving_default": serve}, readme=readme, files=files)
