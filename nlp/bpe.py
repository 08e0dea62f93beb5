"""Byte pair encoding (the book's 14.6.2): learn merges from a word-frequency table, then
segment words into the learned symbols.

Words end with `_`. Learning starts from single characters and repeatedly merges the most
frequent adjacent pair of symbols (counted with the word frequencies; ties go to the pair seen
first), adding it to the symbols. Segmenting is the book's greedy longest match from the left
over the symbol set, `[UNK]` for what nothing matches.

    python -m nlp.bpe learn --data-dir ../shared/data/ptb --merges 200 --out merges.json
    python -m nlp.bpe segment tallest fatter --merges-file merges.json

`--out` (and `--merges-file`) must be named: the tool has no run directory, and a default file
name would land in whatever folder the command runs from.
"""
import collections
import json
import sys
from pathlib import Path

from common import cli
from common.errors import DatasetError, DlsuiteError
from nlp.text import check_text

END = "_"
UNK = "[UNK]"


def most_frequent_pair(token_freqs):
    """The adjacent symbol pair with the largest frequency-weighted count in `token_freqs`
    (tuple of symbols -> frequency), the first seen on ties; None when no word has two symbols."""
    pairs = collections.Counter()
    for symbols, freq in token_freqs.items():
        for pair in zip(symbols, symbols[1:]):
            pairs[pair] += freq
    return max(pairs, key=pairs.get) if pairs else None


def merge_pair(token_freqs, pair):
    """`token_freqs` with every adjacent occurrence of `pair` merged into one symbol."""
    merged = {}
    for symbols, freq in token_freqs.items():
        out, i = [], 0
        while i < len(symbols):
            if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
                out.append(symbols[i] + symbols[i + 1])
                i += 2
            else:
                out.append(symbols[i])
                i += 1
        merged[tuple(out)] = merged.get(tuple(out), 0) + freq
    return merged


def learn(word_freqs, num_merges):
    """Learn up to `num_merges` merges from `word_freqs` (word -> frequency; words get the `_`
    end mark unless they carry it). Returns `(merges, symbols)`: the merged pairs in order and
    the symbol list (single characters, `_`, `[UNK]`, then one symbol per merge)."""
    token_freqs = {}
    for word, freq in word_freqs.items():
        word = word if word.endswith(END) else word + END
        token_freqs[tuple(word)] = token_freqs.get(tuple(word), 0) + int(freq)
    symbols = sorted({c for t in token_freqs for c in t} | {END}) + [UNK]
    merges = []
    for _ in range(num_merges):
        pair = most_frequent_pair(token_freqs)
        if pair is None:
            break
        token_freqs = merge_pair(token_freqs, pair)
        merges.append(pair)
        symbols.append(pair[0] + pair[1])
    return merges, symbols


def segment(word, symbols):
    """Greedy longest-match segmentation of `word` (give it its `_`) into `symbols`, as the
    book's `segment_BPE`; an unmatched rest becomes `[UNK]`."""
    symbols = set(symbols)
    out, start, end = [], 0, len(word)
    while start < len(word) and start < end:
        if word[start:end] in symbols:
            out.append(word[start:end])
            start, end = end, len(word)
        else:
            end -= 1
    if start < len(word):
        out.append(UNK)
    return out


def word_frequencies(sentences):
    """Word -> count over tokenised sentences."""
    return collections.Counter(w for s in sentences for w in s)


def save_merges(path, merges, symbols):
    """Write the symbols and merges as JSON, atomically."""
    from common.files import write_json

    return write_json(path, {"symbols": symbols, "merges": [list(m) for m in merges]})


def load_merges(path):
    """`(merges, symbols)` of a file `save_merges` wrote; one-line `DatasetError` naming the file
    when it is missing, a folder, empty, binary or other JSON."""
    fix = "make one with python -m nlp.bpe learn --out FILE"
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"merges file {path} does not exist; {fix}")
    check_text(path, "merges file", fix)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        merges, symbols = [tuple(m) for m in data["merges"]], list(data["symbols"])
    except (ValueError, KeyError, TypeError):
        merges = symbols = None
    if not symbols or not all(isinstance(s, str) for s in symbols) or \
            not all(len(m) == 2 and all(isinstance(s, str) for s in m) for m in merges):
        raise DatasetError(f"{path} is not a merges file written by python -m nlp.bpe learn; {fix}")
    return merges, symbols


def _check_out(out):
    """`DlsuiteError` before any work when `--out` names a folder or a place that cannot be written."""
    from common.files import writable_dir

    if out.is_dir():
        raise DlsuiteError(f"--out {out} is a folder; name the merges file to write, e.g. {out / 'merges.json'}")
    writable_dir(out.parent, "--out")


def _learn(args):
    from nlp import data as ndata

    _check_out(args.out)
    path = args.corpus or ndata.corpus_path(args.data_dir, args.demo)
    merges, symbols = learn(word_frequencies(ndata.read_sentences(path)), args.merges)
    save_merges(args.out, merges, symbols)
    return {"merges": len(merges), "symbols": len(symbols), "out": str(args.out),
            "last_merges": ["".join(m) for m in merges[-5:]]}


def _segment(args):
    _, symbols = load_merges(args.merges_file)
    return {w: segment(w if w.endswith(END) else w + END, symbols) for w in args.words}


def _learn_arguments(p):
    source = p.add_mutually_exclusive_group()
    source.add_argument("--data-dir", type=Path, help="directory holding ptb.train.txt")
    source.add_argument("--corpus", type=Path, metavar="FILE", help="any text file, one sentence a line")
    source.add_argument("--demo", action="store_true", help="the generated demo corpus")
    p.add_argument("--merges", type=cli.positive_int, default=200, help="number of merges (default 200)")
    p.add_argument("--out", type=Path, required=True, metavar="FILE", help="the merges file to write (JSON)")


def _segment_arguments(p):
    p.add_argument("words", nargs="+", help="words to segment (the end mark _ is added)")
    p.add_argument("--merges-file", type=Path, required=True, metavar="FILE", help="the file learn --out wrote")


TOOLS = {"learn": cli.Tool(_learn, "learn merges from a corpus's word frequencies", _learn_arguments),
         "segment": cli.Tool(_segment, "segment words with learned merges", _segment_arguments)}


def main(argv=None):
    return cli.tool_main("byte pair encoding: learn merges, segment words", TOOLS, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
