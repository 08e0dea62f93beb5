"""BERT on WikiText-2: WordPiece tokenizer throughput and pretraining throughput.

Prints one JSON line per measurement (benchmarks/harness.py):
- tokenizer, sentences/s: our pipeline (keras-hub `BertTokenizer`, a `WordPieceTokenizer` run in
  tf.data batches, as `nlp.bert.tokenize` does) on every training sentence, against Hugging Face
  `tokenizers`' `BertWordPieceTokenizer` (Rust) with the same vocabulary, and the ratio; the
  word-piece ids are checked to agree on the sentences both tokenise;
- pretraining, sequence pairs/s: `BertPretrainer` train steps (the default configuration, or
  the flags after `--`) over one epoch of packed and masked pairs, after a warm-up epoch; the
  data preparation of an epoch (NSP pairs, packing, masking) is timed separately.

    python benchmarks/nlp_bert.py --data-dir ../shared/data/wikitext-2
    python benchmarks/nlp_bert.py --demo -- --batch-size 128
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import report  # noqa: E402


def _config(extra):
    from common import cli
    from nlp import bert

    parser = argparse.ArgumentParser()
    cli.add_config_arguments(parser, bert.Config)
    return cli.build_config(bert.Config, vars(parser.parse_args(extra)))


def tokenizer_lines(sentences, vocabulary):
    from nlp import bert

    tokenizer = bert.make_tokenizer(vocabulary)
    bert.tokenize(tokenizer, sentences[:100])  # trace once
    tic = time.perf_counter()
    ours = bert.tokenize(tokenizer, sentences)
    seconds = time.perf_counter() - tic
    lines = [report("keras-hub WordPieceTokenizer (BertTokenizer) in tf.data batches of 4096", "sentences",
                    len(sentences), seconds, vocabulary=len(vocabulary))]
    try:
        from tokenizers import BertWordPieceTokenizer
    except ImportError:
        return lines
    peer = BertWordPieceTokenizer({t: i for i, t in enumerate(vocabulary)}, lowercase=True, strip_accents=False,
                                  clean_text=False)
    tic = time.perf_counter()
    encoded = peer.encode_batch(sentences, add_special_tokens=False)
    peer_seconds = time.perf_counter() - tic
    same = sum(e.ids == o for e, o in zip(encoded, ours.to_list())) / len(sentences)
    lines.append(report("Hugging Face tokenizers BertWordPieceTokenizer (Rust), encode_batch", "sentences",
                        len(sentences), peer_seconds, same_ids_fraction=round(same, 4),
                        ours_vs_peer_speed=round(peer_seconds / seconds, 3)))
    return lines


def pretraining_lines(paragraphs, vocabulary, config):
    import numpy as np

    from common.data import epoch_dataset
    from nlp import bert

    tokenizer = bert.make_tokenizer(vocabulary)
    corpus = bert.PretrainingCorpus(paragraphs, tokenizer)
    tic = time.perf_counter()
    inputs, targets = bert.pretraining_examples(corpus, tokenizer, config, np.random.default_rng(0), 0)
    prep = time.perf_counter() - tic
    report("NSP pairs + MultiSegmentPacker + MaskedLMMaskGenerator, one epoch", "sequence pairs", len(corpus), prep)
    model = bert.build(config, len(vocabulary), total_steps=10 * len(corpus))
    data = epoch_dataset((inputs, targets), config.batch_size, 0, 0)
    model.fit(data, epochs=1, verbose=0)  # warm-up: tracing
    tic = time.perf_counter()
    model.fit(data, epochs=1, verbose=0)
    seconds = time.perf_counter() - tic
    return report(f"BertPretrainer train steps ({config.num_layers} layers, {config.hidden_dim} hidden, "
                  f"max_len {config.max_len}, batch {config.batch_size}), 1 replica", "sequence pairs",
                  len(corpus), seconds, vocabulary=len(vocabulary))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="directory holding wiki.{valid,test}.tokens (and train)")
    parser.add_argument("--demo", action="store_true", help="the generated demo corpus instead")
    args = parser.parse_args(argv)
    from nlp import bert, wikitext

    config = _config(extra)
    paragraphs, _, _ = wikitext.load_splits(args.data_dir, args.demo)
    sentences = [s for p in paragraphs for s in p]
    vocabulary = bert.learn_vocabulary(sentences, config.vocab_size)
    tokenizer_lines(sentences, vocabulary)
    pretraining_lines(paragraphs, vocabulary, config)


if __name__ == "__main__":
    sys.exit(main())
