"""Corpora and the word-embedding pretraining data (the book's 14.3 and 14.5), vectorised.

Readers: the Penn Treebank (`ptb.train.txt`, Mikolov's word-level version) through
`common.data.resolve_dataset` or `--data-dir`; any whitespace-tokenised file (`--corpus FILE`,
one sentence a line); and `--demo`, a seeded generated corpus in the same file layout whose
words come in topic clusters, so trained vectors can be checked to put a cluster together.

Pretraining data, drawn afresh for every epoch from `common.data.epoch_rng(seed, epoch)` (a
resumed run sees the same examples): subsampling of frequent words (keep probability
`min(1, sqrt(t / f(w)))`, t = 1e-4), centre/context pairs within a random window of 1..5 on
each side, K noise words per pair drawn from the unigram distribution raised to 0.75, and
GloVe's co-occurrence counts with 1/distance weighting. All of it is NumPy over whole arrays:
no Python loop runs per token.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common import data as cdata
from common.errors import DatasetError, UsageError
from common.files import atomic_path
from nlp.text import Vocab, read_lines

PTB_URL = "http://d2l-data.s3-accelerate.amazonaws.com/ptb.zip"
PTB_SHA1 = "319d85e578af0cdc590547f26231e4e31cdf1e42"
PTB_FILES = ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt")

# The demo corpus: topics whose words co-occur, plus function words shared by all topics.
# Version of what `generate_demo_corpus` writes, part of its `--demo` cache folder (`ptb-demo-v1`): bump it
# whenever the bytes it writes change, so a demo set cached by the older code is not reused.
GENERATOR_VERSION = 1
DEMO_TOPICS = {
    "computing": ["chip", "intel", "microprocessor", "computer", "software", "memory", "processor", "disk",
                  "semiconductor", "hardware"],
    "finance": ["stock", "shares", "bond", "market", "investors", "trading", "dividend", "yield", "treasury",
                "futures"],
    "food": ["bread", "cheese", "apple", "soup", "dinner", "kitchen", "butter", "sugar", "coffee", "recipe"],
    "sports": ["football", "coach", "team", "season", "player", "stadium", "league", "goal", "match", "score"],
    "weather": ["rain", "storm", "snow", "wind", "cloud", "forecast", "sunny", "temperature", "winter", "flood"],
    "medicine": ["doctor", "patient", "hospital", "drug", "disease", "nurse", "surgery", "vaccine", "clinic",
                 "therapy"],
}
DEMO_FUNCTION_WORDS = ["the", "a", "of", "and", "to", "in", "is", "was", "for", "on", "it", "with"]


def generate_demo_corpus(directory, seed=0, sentences=4000):
    """Write a topic-clustered corpus as `ptb.train.txt`, `ptb.valid.txt`, `ptb.test.txt` into
    `directory` and return it.

    Each sentence picks one topic of `DEMO_TOPICS` and draws 6-14 words: 70% from the topic
    (Zipf-like within it), 30% function words, with a rare `<unk>` as in PTB. Words of one
    topic therefore share contexts, which word2vec and GloVe must turn into nearby vectors.
    """
    rng = np.random.default_rng(seed)
    topics = list(DEMO_TOPICS.values())
    zipf = 1.0 / np.arange(1, 11)
    zipf /= zipf.sum()
    directory = Path(directory)
    for name, n in zip(PTB_FILES, (sentences, sentences // 10, sentences // 10)):
        lines = []
        for _ in range(n):
            topic = topics[rng.integers(len(topics))]
            length = rng.integers(6, 15)
            from_topic = rng.random(length) < 0.7
            words = np.where(from_topic, np.array(topic)[rng.choice(10, length, p=zipf)],
                             np.array(DEMO_FUNCTION_WORDS)[rng.integers(len(DEMO_FUNCTION_WORDS), size=length)])
            words[rng.random(length) < 0.02] = "<unk>"
            lines.append(" " + " ".join(words) + " \n")
        with atomic_path(directory / name) as tmp:
            tmp.write_text("".join(lines))
    return directory


def ptb_directory(data_dir=None, demo=False):
    """Directory holding `ptb.train.txt`: `data_dir`, the generated demo corpus (in the cache), or
    the cached/downloaded canonical `ptb.zip`."""
    if demo:
        directory = cdata.demo_cache_dir("ptb-demo", version=GENERATOR_VERSION)
        if not (directory / PTB_FILES[0]).exists():
            generate_demo_corpus(directory)
        return directory
    return cdata.resolve_dataset("ptb", required=[PTB_FILES[0]], url=PTB_URL, sha1=PTB_SHA1,
                                 data_dir=data_dir, hint="--demo")


def read_sentences(path):
    """Whitespace-tokenised sentences of a text file (one a line; blank lines skipped).
    `DatasetError` for a missing, unreadable or empty file."""
    sentences = [line.split() for line in read_lines(path, "corpus file", "pass a plain text corpus")]
    sentences = [s for s in sentences if s]
    if not sentences:
        raise DatasetError(f"corpus {path} is empty: it needs at least one line of whitespace-separated words")
    return sentences


def corpus_path(data_dir=None, demo=False, corpus=None):
    """The file the run trains on: `--corpus FILE`, else `ptb.train.txt` of PTB or of the demo."""
    if corpus:
        if demo or data_dir:
            raise UsageError("--corpus names the training file itself; leave out --data-dir and --demo")
        return Path(corpus)
    return ptb_directory(data_dir, demo) / PTB_FILES[0]


@dataclass
class Corpus:
    """A tokenised corpus as flat arrays: `ids` int32 `(tokens,)` (vocabulary indices, `<unk>`
    tokens removed as in the book) and `sentence` int32 `(tokens,)` (the sentence each token is
    in; windows never cross a sentence). `vocab.counts` are the counts over these tokens."""

    ids: np.ndarray
    sentence: np.ndarray
    vocab: Vocab

    def __len__(self):
        return len(self.ids)


def build_corpus(sentences, min_freq=1, vocab=None):
    """`Corpus` from token lists; a new `Vocab(min_freq)` unless `vocab` is given. Tokens below
    `min_freq` and `<unk>` are dropped from the token stream."""
    if vocab is None:
        vocab = Vocab(sentences, min_freq=min_freq)
        if len(vocab) < 3:
            raise DatasetError(f"the corpus has {len(vocab) - 1} word(s) seen at least {min_freq} times; "
                               "lower --min-freq or use a larger corpus")
    lengths = np.fromiter((len(s) for s in sentences), dtype=np.int64, count=len(sentences))
    ids = vocab.encode([t for s in sentences for t in s])
    sentence = np.repeat(np.arange(len(sentences), dtype=np.int32), lengths)
    keep = ids != vocab.unk
    ids, sentence = ids[keep], sentence[keep]
    counts = np.bincount(ids, minlength=len(vocab))
    vocab = Vocab.from_tokens(vocab.idx_to_token, counts)
    return Corpus(ids, sentence, vocab)


# --- skip-gram / CBOW pretraining data -----------------------------------------------------------
def keep_probabilities(counts, t=1e-4):
    """Subsampling keep probability per vocabulary index: `min(1, sqrt(t / f(w)))` with
    `f(w) = count(w) / total` (the book's 14.3.1). float64 `(vocab,)`; 0 for unseen words;
    `t = 0` keeps every seen word."""
    counts = np.asarray(counts, dtype=np.float64)
    if t == 0:
        return (counts > 0).astype(np.float64)
    freq = counts / counts.sum()
    with np.errstate(divide="ignore"):
        keep = np.minimum(1.0, np.sqrt(t / freq))
    keep[counts == 0] = 0.0
    return keep


def subsample(corpus, rng, t=1e-4):
    """Boolean mask `(tokens,)` of the tokens kept by subsampling (one uniform draw per token)."""
    return rng.random(len(corpus)) < keep_probabilities(corpus.vocab.counts, t)[corpus.ids]


def window_pairs(sentence, max_window, rng):
    """Positions `(centre, context)` (int64 `(pairs,)` each) of every context token within a window
    drawn uniformly from 1..`max_window` per centre (the same on both sides, as in the book and
    word2vec), never across a sentence boundary and never a position with itself."""
    n = len(sentence)
    window = rng.integers(1, max_window + 1, size=n)
    centres, contexts = [], []
    for offset in range(1, min(max_window, n - 1) + 1):
        left = np.arange(n - offset)
        right = left + offset
        same = sentence[left] == sentence[right]
        forward = same & (window[left] >= offset)       # centre left, context to its right
        backward = same & (window[right] >= offset)     # centre right, context to its left
        centres += [left[forward], right[backward]]
        contexts += [right[forward], left[backward]]
    if not centres:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(centres), np.concatenate(contexts)


def noise_distribution(counts, power=0.75):
    """Noise probabilities `count^power / sum` per vocabulary index (0 for `<unk>` and unseen
    words), float64 `(vocab,)`: the book's 14.3.3 sampling weights."""
    weights = np.asarray(counts, dtype=np.float64) ** power
    weights[0] = 0.0
    return weights / weights.sum()


def sample_noise(probabilities, shape, rng):
    """Noise word indices of `shape` (int32) drawn from `probabilities` (inverse-CDF search)."""
    cdf = np.cumsum(probabilities)
    cdf /= cdf[-1]
    draws = np.searchsorted(cdf, rng.random(shape), side="right")
    return np.minimum(draws, len(cdf) - 1).astype(np.int32)


def skip_gram_examples(corpus, rng, max_window=5, negatives=5, t=1e-4, kept=None):
    """One epoch of skip-gram examples: `(centres (n,), targets (n, 1 + negatives))` int32, where
    `targets[:, 0]` is the observed context word (label 1) and the rest are noise words (label 0),
    in a random order. Subsampling (unless the `kept` mask is given), windows and noise come
    from `rng`."""
    kept = subsample(corpus, rng, t) if kept is None else kept
    ids, sentence = corpus.ids[kept], corpus.sentence[kept]
    centre_pos, context_pos = window_pairs(sentence, max_window, rng)
    order = rng.permutation(len(centre_pos))
    centres, contexts = ids[centre_pos[order]], ids[context_pos[order]]
    noise = sample_noise(noise_distribution(corpus.vocab.counts), (len(centres), negatives), rng)
    return centres.astype(np.int32), np.concatenate([contexts[:, None], noise], axis=1).astype(np.int32)


def cbow_examples(corpus, rng, max_window=5, negatives=5, t=1e-4, kept=None):
    """One epoch of CBOW examples: `(contexts (n, 2 * max_window), mask (n, 2 * max_window),
    targets (n, 1 + negatives))`. Row i holds the context words of one centre word (padded with 0,
    mask 0.0 where padded); `targets[:, 0]` is that centre word (label 1), the rest noise."""
    kept = subsample(corpus, rng, t) if kept is None else kept
    ids, sentence = corpus.ids[kept], corpus.sentence[kept]
    centre_pos, context_pos = window_pairs(sentence, max_window, rng)
    by_centre = np.argsort(centre_pos, kind="stable")
    centre_pos, context_pos = centre_pos[by_centre], context_pos[by_centre]
    centre, starts, sizes = np.unique(centre_pos, return_index=True, return_counts=True)
    slot = np.arange(len(centre_pos)) - np.repeat(starts, sizes)
    row = np.repeat(np.arange(len(centre)), sizes)
    contexts = np.zeros((len(centre), 2 * max_window), np.int32)
    mask = np.zeros((len(centre), 2 * max_window), np.float32)
    contexts[row, slot] = ids[context_pos]
    mask[row, slot] = 1.0
    order = rng.permutation(len(centre))
    noise = sample_noise(noise_distribution(corpus.vocab.counts), (len(centre), negatives), rng)
    targets = np.concatenate([ids[centre][order, None], noise], axis=1).astype(np.int32)
    return contexts[order], mask[order], targets


# --- GloVe ---------------------------------------------------------------------------------------
def cooccurrence(corpus, window=5):
    """GloVe's co-occurrence counts: for every pair of tokens at distance d <= `window` in one
    sentence, x[i, j] and x[j, i] each grow by 1/d. Returns `(rows, cols, values)` of the nonzero
    entries (int32, int32, float32), sorted by (row, col)."""
    ids, sentence, size = corpus.ids.astype(np.int64), corpus.sentence, len(corpus.vocab)
    keys, weights = [], []
    for d in range(1, min(window, len(ids) - 1) + 1):
        same = sentence[:-d] == sentence[d:]
        a, b = ids[:-d][same], ids[d:][same]
        keys += [a * size + b, b * size + a]
        weights += [np.full(2 * len(a), 1.0 / d)]
    if not keys:
        return np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32)
    keys = np.concatenate(keys)
    unique, inverse = np.unique(keys, return_inverse=True)
    values = np.bincount(inverse, weights=np.concatenate(weights))
    return (unique // size).astype(np.int32), (unique % size).astype(np.int32), values.astype(np.float32)


def glove_weight(x, x_max=100.0, alpha=0.75):
    """GloVe's weighting function h(x) = (x / x_max)^alpha for x < x_max, else 1."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x < x_max, (x / x_max) ** alpha, 1.0)
