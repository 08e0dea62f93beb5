"""BERT pretraining on WikiText-2 (the book's 14.8-14.10), assembled from keras-hub.

The encoder is `keras_hub.models.BertBackbone` configured from `Config` (the book's small one
by default: 2 layers, 128 hidden, 256 FFN, 2 heads, 64 tokens), the masked-language-model head
is `keras_hub.layers.MaskedLMHead` tied to the token embedding, the vocabulary is WordPiece
(`keras_hub.tokenizers.compute_word_piece_vocabulary`, used through `BertTokenizer`, a
`WordPieceTokenizer` with BERT's special tokens), sequence pairs are packed by
`keras_hub.layers.MultiSegmentPacker` and masked by `keras_hub.layers.MaskedLMMaskGenerator`
(15% of the word pieces; 80% [MASK], 10% random, 10% unchanged). keras-hub has no
next-sentence-prediction head: ours is a `Dense(2)` on the backbone's pooled output (a tanh
layer on [CLS]), the book's MLP. NSP pairs are the book's: every sentence that has a successor
in its paragraph is paired 50/50 with that successor or with a random sentence of a random
paragraph, drawn afresh each epoch from `common.data.epoch_rng(seed, epoch)` (masks from
`epoch_seed`, through the generator's Python path), so a resumed run sees the same data.

    python -m nlp.bert pretrain --data-dir ../shared/data/wikitext-2    # trains on valid (no train file)
    python -m nlp.bert evaluate                                         # the newest run, on the test split
    python -m nlp.bert encode "a crane is flying" "he bought a crane"   # shapes and the [CLS] vector
    python -m nlp.bert encode --preset PATH/TO/bert_tiny_en_uncased "some text"
    python -m nlp.bert pretrain --demo                                  # offline, under a minute

The run directory holds `vocab.txt`, `checkpoints/`, `metrics.json` (per epoch: the training
losses and accuracies and the same on a held-out part of the training paragraphs), `curves.png`,
`model.keras` and `preset/`, a keras-hub preset directory (backbone, tokenizer, preprocessor)
that `keras_hub.models.BertBackbone.from_preset` and `load_backbone` read.

This module is the command and its `Config`; `nlp.bert_data` holds the vocabulary, packing, the
NSP corpus and masking, `nlp.bert_model` the pretrainer, its heads, preset I/O and the training
(imported, with TensorFlow, when a command runs; their names are also reachable here). For other
modules (fine-tuning in `nlp.nli`): `nlp.bert_model.load_backbone`, `nlp.bert_model.pair_classifier`,
`nlp.bert_data.encode_pairs`.
"""
import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from common import cli
from common.export import add_arguments as export_arguments
from common.errors import UsageError


@dataclass
class Config(cli.TrainConfig):
    epochs: int = 72
    batch_size: int = 32
    lr: float = field(default=1e-3, metadata=cli.positive("peak Adam learning rate (cosine decay to 0)"))
    num_layers: int = field(default=2, metadata=cli.at_least(1, "transformer encoder blocks"))
    hidden_dim: int = field(default=128, metadata=cli.at_least(1, "hidden size of the encoder"))
    intermediate_dim: int = field(default=256, metadata=cli.at_least(1, "hidden size of the feed-forward layers"))
    num_heads: int = field(default=2, metadata=cli.at_least(1, "attention heads (must divide --hidden-dim)"))
    max_len: int = field(default=64, metadata=cli.at_least(8, "tokens per packed sentence pair"))
    dropout: float = field(default=0.1, metadata=cli.bounds("[0, 1)", "dropout in the encoder"))
    vocab_size: int = field(default=5000, metadata=cli.at_least(
        16, "largest WordPiece vocabulary to learn (the learner may return fewer pieces)"))
    mask_rate: float = field(default=0.15, metadata=cli.bounds("(0, 1)", "fraction of word pieces masked"))
    weight_decay: float = field(default=0.01, metadata=cli.bounds("[0, inf)", "AdamW weight decay"))
    nsp_weight: float = field(default=1.0, metadata=cli.bounds(
        "[0, inf)", "weight of the NSP loss in the training loss MLM + w x NSP (the book: 1)"))
    val_ratio: float = field(default=0.05, metadata=cli.bounds(
        "[0, 1)", "fraction of the training paragraphs held out for per-epoch validation"))

    def validate(self):
        super().validate()
        if self.hidden_dim % self.num_heads:
            raise UsageError(f"--num-heads {self.num_heads} must divide --hidden-dim {self.hidden_dim}")

    @property
    def max_predictions(self):
        """Masked positions per sequence (the book's round(max_len * 0.15))."""
        return max(1, round(self.max_len * self.mask_rate))


DEMO = {"epochs": 4, "batch_size": 32, "vocab_size": 200, "lr": 2e-3, "max_len": 32}
# The book's 14.10: batch 512, Adam 0.01, dropout 0.2 (it trains 50 steps, about 1 epoch here).
BOOK = {"batch_size": 512, "lr": 0.01, "dropout": 0.2, "weight_decay": 0.0, "epochs": 2}


MODEL = cli.ModelModule("nlp.bert_model")  # the pretrainer and its training, imported when a command runs
DATA = cli.ModelModule("nlp.bert_data")  # vocabulary, packing, the NSP corpus and masking (TensorFlow too)


def __getattr__(name):
    """The names of `nlp.bert_model` (`build`, `load_backbone`, `BertPretrainer`, ...) and `nlp.bert_data`
    (`make_tokenizer`, `encode_pairs`, `PretrainingCorpus`, ...), imported when first asked for."""
    if name.startswith("__"):
        raise AttributeError(name)
    model = MODEL()
    return getattr(model, name) if hasattr(model, name) else DATA.forward(name)


def _encode_arguments(parser):
    parser.add_argument("texts", nargs="+", metavar="TEXT", help='a sentence, or two ("text a" "text b")')
    parser.add_argument("--preset", type=Path, metavar="DIR",
                        help="encode with a local keras-hub BERT preset directory instead of a run")


VERBS = {"train": "pretrain"}  # the field's word for training BERT
COMMANDS = {
    "pretrain": cli.Command(MODEL.command("pretrain"), "pretrain BERT (masked LM + next sentence) on WikiText-2",
                            trains=True),
    "evaluate": cli.Command(MODEL.command("evaluate"),
                            "MLM and NSP loss/accuracy of a pretrained run on the test split"),
    "encode": cli.Command(MODEL.command("encode"), "BERT's outputs for a text or a text pair (shapes, [CLS] vector)",
                          add_arguments=_encode_arguments, reads_data=False),
    "export": cli.Command(MODEL.command("export"), "a SavedModel of the run's encoder reading raw text",
                          add_arguments=export_arguments, reads_data=False),
}
PRESETS = {"book": BOOK}
DESCRIPTION = "BERT pretraining (masked LM + next sentence prediction) on WikiText-2, from keras-hub"
SPEC = cli.Spec("nlp.bert", DESCRIPTION, Config, COMMANDS, DEMO, PRESETS, MODEL)
load = SPEC.load
pretrain, evaluate, export = SPEC.api("pretrain"), SPEC.api("evaluate"), SPEC.api("export")
_encode_run = SPEC.api("encode")


def _encode_preset(args):
    return MODEL().encode_preset(args)


def encode(run_dir=None, /, texts=(), preset=None, **options):
    """`python -m nlp.bert encode` from Python -> the result dict: BERT's outputs for `texts` (one text or a pair),
    from a pretrained run (`run_dir`, default the newest completed one) or, with `preset` and no `run_dir`, from a
    local keras-hub BERT preset directory."""
    texts = [texts] if isinstance(texts, str) else [str(t) for t in texts]
    if preset is not None and run_dir is None and options.get("run_dir") is None:
        if options or not texts:
            raise UsageError("encode with a preset takes texts (one, or a pair) and nothing else"
                             + (f"; got {', '.join(sorted(options))}" if options else ""))
        return _encode_preset(argparse.Namespace(texts=texts, preset=Path(preset)))
    return _encode_run(run_dir, texts=texts or None, preset=preset, **options)


def _encodes_a_preset(argv):
    """Whether `argv` is `encode` with `--preset DIR` (either spelling, `--preset=DIR` too) and no
    `--run-dir`, read by argparse as the real parser reads it. `cli.Command` has no mode for a
    command that works on a run unless a flag names another source, so this one needs no run
    directory only by going through `cli.tool_main`; a malformed line goes to `cli.main`, whose
    parser reports it."""
    if argv[:1] != ["encode"]:
        return False
    probe = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    probe.add_argument("--preset")
    probe.add_argument("--run-dir")
    try:
        flags = probe.parse_known_args(argv[1:])[0]
    except argparse.ArgumentError:
        return False
    return flags.preset is not None and flags.run_dir is None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    if _encodes_a_preset(argv):
        return cli.tool_main(DESCRIPTION, {"encode": cli.Tool(_encode_preset, COMMANDS["encode"].help,
                                                              add_arguments=_encode_arguments)}, argv)
    return SPEC.main(argv)


if __name__ == "__main__":
    sys.exit(main())
