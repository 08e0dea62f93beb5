"""Natural language inference's models, training and evaluation (`nlp.nli` is the command and its
`Config`): the decomposable attention model, and a pretrained BERT (`nlp.bert_model`) fine-tuned
with an MLP on [CLS].
"""
import keras
import numpy as np
from keras import ops

from common.errors import DlsuiteError, UsageError
from nlp import bert_data, bert_model, classify, snli
from nlp.classify import PAD, class_probabilities, compile_classifier
from nlp.text import Vocab, coverage, encode_padded, warn_no_basis


def _mlp(hidden, dropout, name):
    return keras.Sequential([keras.layers.Dropout(dropout), keras.layers.Dense(hidden, activation="relu"),
                             keras.layers.Dropout(dropout), keras.layers.Dense(hidden, activation="relu")],
                            name=name)


def _masked_softmax(scores, mask):
    """Softmax over the last axis of `scores` `(b, m, n)` where `mask` `(b, n)` is 1."""
    return ops.softmax(scores + (1.0 - mask[:, None, :]) * -1e9, axis=-1)


@keras.saving.register_keras_serializable(package="dlsuite")
class DecomposableAttention(keras.Model):
    """Inputs `{"premise": (b, m), "hypothesis": (b, n)}` int32 token ids (`pad_id` pads) ->
    logits `(b, num_classes)`, by attend / compare / aggregate (Parikh et al. 2016)."""

    def __init__(self, vocab_size, embedding_dim=50, hidden=200, dropout=0.2, pad_id=1, freeze_embeddings=False,
                 num_classes=3, compare="concat", **kwargs):
        super().__init__(**kwargs)
        self.compare = compare
        self.vocab_size, self.embedding_dim, self.hidden, self.dropout = vocab_size, embedding_dim, hidden, dropout
        self.pad_id, self.freeze_embeddings, self.num_classes = pad_id, freeze_embeddings, num_classes
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
        self.embedding.trainable = not freeze_embeddings
        self.attend_mlp = _mlp(hidden, dropout, "attend")
        self.compare_mlp = _mlp(hidden, dropout, "compare")
        self.aggregate_mlp = _mlp(hidden, dropout, "aggregate")
        self.classifier = keras.layers.Dense(num_classes, name="classifier")

    def call(self, inputs, training=False):
        premise, hypothesis = inputs["premise"], inputs["hypothesis"]
        mask_a = ops.cast(ops.not_equal(premise, self.pad_id), "float32")
        mask_b = ops.cast(ops.not_equal(hypothesis, self.pad_id), "float32")
        a, b = self.embedding(premise), self.embedding(hypothesis)
        # attend: e (b, m, n); beta_i aligns b with premise token i, alpha_j aligns a with token j
        e = ops.matmul(self.attend_mlp(a, training=training),
                       ops.transpose(self.attend_mlp(b, training=training), (0, 2, 1)))
        beta = ops.matmul(_masked_softmax(e, mask_b), b)
        alpha = ops.matmul(_masked_softmax(ops.transpose(e, (0, 2, 1)), mask_a), a)
        # compare, then aggregate the real (unpadded) positions
        v_a = self.compare_mlp(self._pair_features(a, beta), training=training)
        v_b = self.compare_mlp(self._pair_features(b, alpha), training=training)
        v_a = ops.sum(v_a * mask_a[..., None], axis=1)
        v_b = ops.sum(v_b * mask_b[..., None], axis=1)
        return self.classifier(self.aggregate_mlp(ops.concatenate([v_a, v_b], axis=-1), training=training))

    def _pair_features(self, x, aligned):
        """`(b, m, 2d)` [x, aligned] (the book), or `(b, m, 4d)` with x - aligned and x * aligned added."""
        parts = [x, aligned] if self.compare == "concat" else [x, aligned, x - aligned, x * aligned]
        return ops.concatenate(parts, axis=-1)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "embedding_dim": self.embedding_dim,
                "hidden": self.hidden, "dropout": self.dropout, "pad_id": self.pad_id,
                "freeze_embeddings": self.freeze_embeddings, "num_classes": self.num_classes,
                "compare": self.compare}


def build(config, vocab_size, pad_id, initial=None):
    """The compiled, built attention model; `initial` (a `pretrained.Pretrained`) fills the
    embedding table, which is frozen when `--freeze-embeddings` and `--embeddings` are given."""
    model = DecomposableAttention(vocab_size, config.embedding_dim, config.hidden, config.dropout, pad_id,
                                  freeze_embeddings=config.freeze_embeddings and bool(config.embeddings),
                                  compare=config.compare)
    ids = np.full((1, 2), pad_id, np.int32)
    model({"premise": ids, "hypothesis": ids})
    if initial is not None:
        model.embedding.embeddings.assign(initial.matrix)
    return compile_classifier(model, config.lr)


def build_vocab(pairs, min_freq):
    """`Vocab` of the premise and hypothesis tokens (`<unk>` 0, `<pad>` 1)."""
    return Vocab(pairs.premises + pairs.hypotheses, min_freq=min_freq, reserved_tokens=[PAD])


def encode(vocab, pairs, max_len):
    """`{"premise": (n, max_len), "hypothesis": (n, max_len)}` int32 ids, padded with `<pad>`."""
    pad = vocab[PAD]
    return {"premise": encode_padded(vocab, pairs.premises, max_len, pad),
            "hypothesis": encode_padded(vocab, pairs.hypotheses, max_len, pad)}


def data_source(ctx):
    """(where, readers): the command's pairs as `snli.load_splits` reads them, from `--tfds snli` /
    `multi_nli`, `--data-dir` in `--format`, or the demo."""
    if ctx.tfds is not None:
        return f"TFDS {ctx.tfds['name']}", snli.tfds_readers(ctx.tfds["name"], ctx.tfds_examples)
    directory = snli.snli_directory(ctx.data_dir, ctx.demo)
    return directory, snli.find_splits(directory, ctx.config.format)


def load_splits(ctx):
    cfg = ctx.config
    where, readers = data_source(ctx)
    return snli.load_splits(where, cfg.holdout, cfg.val_ratio, cfg.seed, readers)


def train(ctx):
    cfg = ctx.config
    if cfg.model == "bert":
        return train_bert(ctx)
    splits = load_splits(ctx)
    vocab = build_vocab(splits.train, cfg.min_freq)
    initial = classify.initial_embeddings(cfg, vocab)
    with ctx.strategy.scope():
        model = build(cfg, len(vocab), vocab[PAD], initial)
    run = ctx.run()
    classify.save_vocab(run, vocab)
    classify.save_classes(run, snli.LABELS)
    fitted = classify.fit(model, run, cfg, encode(vocab, splits.train, cfg.max_len), splits.train.labels,
                          encode(vocab, splits.val, cfg.max_len), splits.val.labels)
    scores = classification_report(model, vocab, splits.evaluation, cfg.max_len)
    return {**fitted, "split": splits.evaluation_name, "accuracy": scores["accuracy"], "pairs": scores["pairs"],
            "train_pairs": len(splits.train), "vocabulary": len(vocab), **classify.embeddings_report(initial)}


def classification_report(model, vocab, pairs, max_len):
    """`accuracy`, per-class `precision` / `recall` (scikit-learn), the `confusion_matrix` (rows:
    true label, columns: predicted, in `labels` order) and the majority-class `baseline`."""
    if len(pairs) == 0:
        raise DlsuiteError("the evaluation split holds no labelled pairs")
    predicted = class_probabilities(model, encode(vocab, pairs, max_len)).argmax(axis=1)
    return scores(pairs.labels, predicted)


def scores(truth, predicted):
    """The metrics of `classification_report` for label ids `truth` and `predicted`."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    ids = list(range(len(snli.LABELS)))
    precision, recall, _, _ = precision_recall_fscore_support(truth, predicted, labels=ids, zero_division=0)
    return {"accuracy": round(float(np.mean(truth == predicted)), 4), "pairs": int(len(truth)),
            "precision": {n: round(float(p), 4) for n, p in zip(snli.LABELS, precision)},
            "recall": {n: round(float(r), 4) for n, r in zip(snli.LABELS, recall)},
            "labels": list(snli.LABELS),
            "confusion_matrix": confusion_matrix(truth, predicted, labels=ids).tolist(),
            "baseline": round(float(np.bincount(truth, minlength=3).max() / len(truth)), 4)}


def restore(ctx):
    """The trained attention model of the run and its vocabulary."""
    return classify.restore(ctx, build)


def _print_report(split, result):
    width = max(len(n) for n in snli.LABELS)
    print(f"{split}: accuracy {result['accuracy']:.4f} on {result['pairs']} pairs (majority {result['baseline']:.4f})")
    print(f"{'':{width}}  precision  recall   confusion (predicted: {' '.join(n[:4] for n in snli.LABELS)})")
    for name, row in zip(snli.LABELS, result["confusion_matrix"]):
        print(f"{name:{width}}  {result['precision'][name]:9.4f}  {result['recall'][name]:6.4f}   "
              + " ".join(f"{v:5d}" for v in row))


def evaluate(ctx):
    cfg = ctx.config
    where, readers = data_source(ctx)
    name, pairs = snli.read_evaluation(where, ctx.args.split, cfg.holdout, cfg.seed, readers)
    if cfg.model == "bert":
        model, tokenizer, seq_len = restore_bert(ctx)
        predicted = class_probabilities(model, encode_bert(tokenizer, pairs, seq_len), 256).argmax(axis=1)
        result = {"split": name, **scores(pairs.labels, predicted)}
    else:
        model, vocab = restore(ctx)
        result = {"split": name, **classification_report(model, vocab, pairs, cfg.max_len)}
    _print_report(name, result)
    return result


def predict(ctx):
    """The label and probabilities of one pair, with the vocabulary's coverage of the words the model
    reads (`words`, `unknown_words`, `known_fraction`; one warning line on stderr for a sentence of
    which it knows no word: the label then has no basis)."""
    premise, hypothesis = ctx.args.premise.lower().split(), ctx.args.hypothesis.lower().split()
    if not premise or not hypothesis:
        raise UsageError("--premise and --hypothesis must each hold at least one word")
    pairs = snli.Pairs([premise], [hypothesis], np.zeros(1, np.int32))
    if ctx.config.model == "bert":
        model, tokenizer, seq_len = restore_bert(ctx)
        probabilities = class_probabilities(model, encode_bert(tokenizer, pairs, seq_len))[0]
        sides = [bert_data.coverage(tokenizer, [" ".join(s)]) for s in (premise, hypothesis)]
        vocabulary = tokenizer.vocabulary_size()
    else:
        model, vocab = restore(ctx)
        probabilities = class_probabilities(model, encode(vocab, pairs, ctx.config.max_len))[0]
        sides = [coverage(vocab, s[:ctx.config.max_len]) for s in (premise, hypothesis)]
        vocabulary = len(vocab)
    blind = [(name, side["words"]) for name, side in zip(("premise", "hypothesis"), sides)
             if side["unknown_words"] == side["words"]]
    if blind:
        warn_no_basis(" and ".join(f"the {name}" for name, _ in blind),
                      sum(n for _, n in blind), vocabulary)
    words = sides[0]["words"] + sides[1]["words"]
    unknown = sides[0]["unknown_words"] + sides[1]["unknown_words"]
    return {"label": snli.LABELS[int(np.argmax(probabilities))],
            "probabilities": {n: round(float(p), 4) for n, p in zip(snli.LABELS, probabilities)},
            "words": words, "unknown_words": unknown,
            "known_fraction": round((words - unknown) / words, 4) if words else 0.0}


# --- --model bert: fine-tune a pretrained BERT (nlp.bert) with an MLP on [CLS] ----------------------
def build_bert(config):
    """The compiled pair classifier on the BERT of `--bert-run` / `--bert-preset`, and its
    tokenizer and sequence length (`nlp.bert_model.load_backbone`, `nlp.bert_model.pair_classifier`)."""
    backbone, tokenizer, seq_len = bert_model.load_backbone(run_dir=config.bert_run or None,
                                                            preset=config.bert_preset or None)
    model = bert_model.pair_classifier(backbone, len(snli.LABELS), dropout=config.dropout)
    return compile_classifier(model, config.lr), tokenizer, seq_len


def encode_bert(tokenizer, pairs, seq_len):
    """`[CLS] premise [SEP] hypothesis [SEP]` inputs of `pairs` (`nlp.bert_data.encode_pairs`)."""
    return bert_data.encode_pairs(tokenizer, [" ".join(p) for p in pairs.premises],
                                  [" ".join(h) for h in pairs.hypotheses], seq_len)


def train_bert(ctx):
    cfg = ctx.config
    splits = load_splits(ctx)
    with ctx.strategy.scope():
        model, tokenizer, seq_len = build_bert(cfg)
    run = ctx.run()
    fitted = classify.fit(model, run, cfg, encode_bert(tokenizer, splits.train, seq_len), splits.train.labels,
                          encode_bert(tokenizer, splits.val, seq_len), splits.val.labels)
    predicted = class_probabilities(model, encode_bert(tokenizer, splits.evaluation, seq_len), 256).argmax(axis=1)
    result = scores(splits.evaluation.labels, predicted)
    return {**fitted, "split": splits.evaluation_name, "accuracy": result["accuracy"], "pairs": result["pairs"],
            "train_pairs": len(splits.train), "seq_len": seq_len}


def restore_bert(ctx):
    """The fine-tuned pair classifier of the run (built on the same BERT source), its tokenizer
    and sequence length."""
    model, tokenizer, seq_len = build_bert(ctx.config)
    ctx.restore(model)
    return model, tokenizer, seq_len


def export(ctx):
    """Write the run's model as a SavedModel reading raw sentence pairs (`nlp.serving.export_classifier`;
    `export_bert` for `--model bert`): inputs `premise`, `hypothesis`, outputs `probabilities` (one
    column per label), `label`, `words`, `unknown_words`."""
    from nlp import serving

    serving.saved_model_only(ctx)
    names = serving.class_names(ctx.run_dir, snli.LABELS)
    if ctx.config.model == "bert":
        return export_bert(ctx, names)
    model, vocab = restore(ctx)
    return serving.export_classifier(ctx, model, model.num_classes, vocab.idx_to_token, ("premise", "hypothesis"),
                                     serving.whitespace_tokens, names,
                                     {"premise": "a man is sleeping .", "hypothesis": "nobody is sleeping ."})


def export_bert(ctx, names):
    """`export` of a `--model bert` run: `predict`'s lower-casing and whitespace split, the keras-hub
    `BertTokenizer` and `MultiSegmentPacker` in the graph; `words` / `unknown_words` count as
    `nlp.bert_data.coverage` (pieces not starting with ##; [UNK]). Loading it needs `import tensorflow_text`."""
    import tensorflow as tf

    from common import export as exporting
    from nlp import serving

    model, tokenizer, seq_len = restore_bert(ctx)
    if len(names) != model.output_shape[-1]:
        raise UsageError(f"the run's model has {model.output_shape[-1]} classes but {len(names)} class names; "
                         "restore its classes.json")
    packer = bert_data.segment_packer(tokenizer, seq_len)
    module = tf.Module()
    module.tokenizer = tokenizer
    module.model_variables = [v.value for v in model.variables]  # not the Keras model (it traces its own)
    starts_word = tf.constant([not t.startswith("##") for t in tokenizer.get_vocabulary()])
    label_names, unk = tf.constant(names), tokenizer.token_to_id("[UNK]")

    def pieces(text):
        joined = tf.strings.reduce_join(serving.whitespace_tokens(text), axis=-1, separator=" ")
        return tf.cast(tokenizer(joined), tf.int32)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="premise"),
                                  tf.TensorSpec([None], tf.string, name="hypothesis")])
    def serve(premise, hypothesis):
        sides = (pieces(premise), pieces(hypothesis))
        token_ids, segment_ids = packer(sides)
        token_ids = tf.cast(token_ids, tf.int32)
        inputs = {"token_ids": token_ids, "segment_ids": tf.cast(segment_ids, tf.int32),
                  "padding_mask": tf.cast(token_ids != tokenizer.pad_token_id, tf.int32)}
        probabilities = tf.nn.softmax(model(inputs, training=False), axis=-1)
        words = sum(tf.reduce_sum(tf.cast(tf.ragged.map_flat_values(tf.gather, starts_word, side), tf.int32), axis=1)
                    for side in sides)
        unknown = sum(tf.reduce_sum(tf.cast(side == unk, tf.int32), axis=1) for side in sides)
        return {"probabilities": probabilities, "label": tf.gather(label_names, tf.argmax(probabilities, axis=-1)),
                "words": words, "unknown_words": unknown}

    readme = (f"{ctx.prog} export of {ctx.run_dir} (fine-tuned BERT; WordPiece in the graph, pairs of --max-len "
              f"{seq_len}). Load it after `import tensorflow_text` (the tokenizer's ops).\n"
              f"outputs: probabilities (columns: {', '.join(names)}), label (class name), words and unknown_words "
              "(word pieces starting a word; [UNK]).\n\nexample:\n  import tensorflow as tf, tensorflow_text  # noqa\n"
              "  model = tf.saved_model.load(DIR)\n  model.signatures['serving_default'](premise=tf.constant(['a man "
              "is sleeping .']), hypothesis=tf.constant(['nobody is sleeping .']))\n")
    files = {"labels.txt": "".join(f"{n}\n" for n in names),
             "vocab.txt": "".join(f"{t}\n" for t in tokenizer.get_vocabulary())}
    return exporting.write(ctx.args.out, module, {"serving_default": serve}, readme=readme, files=files)
