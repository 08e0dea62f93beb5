"""WikiText-2 for BERT pretraining (the book's 14.9): reader, paragraph processing, offline generator.

The canonical `wikitext-2-v1.zip` (tokenised, `<unk>` for rare words) holds
`wiki.{train,valid,test}.tokens`, one Wikipedia paragraph (or heading) a line. As the book,
a paragraph is a line split on ' . ' into sentences, lower-cased, kept when it has at least
two sentences (headings and one-sentence lines go). Beyond the book, WikiText's escaped in-word
separators `@-@`, `@,@`, `@.@` become `-`, `,`, `.` and its `<unk>` becomes the plain word
`unk`, so that the WordPiece tokenizer (which splits on punctuation) sees one word, not three
easy-to-guess pieces.

`--data-dir` names the folder holding the `.tokens` files or the one holding the zip's
`wikitext-2/` folder, nothing deeper. Training reads the train split when the directory has it,
otherwise the valid split (the real copy in `../shared/data/wikitext-2/` has no train file);
evaluation always reads test.
`--demo` writes a generated corpus in the same layout whose paragraphs each keep to one topic
(so a true next sentence shares its words with the first, which NSP can learn) and whose
sentences follow fixed phrase patterns (so masked words can be predicted from their context).
"""
from pathlib import Path

import numpy as np

from common import data as cdata
from common.errors import DatasetError
from common.files import atomic_path
from nlp.text import read_lines

URL = "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-v1.zip"
SHA1 = "3c914d17d80b1459be871a5039ac23e752a53cbe"
SPLITS = ("train", "valid", "test")
_ESCAPES = (("@-@", "-"), ("@,@", ","), ("@.@", "."), ("<unk>", "unk"))
ZIP_FOLDER = "wikitext-2"  # what wikitext-2-v1.zip extracts to


def split_file(split):
    """The file name of a split: `wiki.valid.tokens`."""
    return f"wiki.{split}.tokens"


REQUIRED = [split_file("valid"), split_file("test")]  # training falls back to valid when train is absent


def paragraphs_of(lines):
    """The book's `_read_wiki` on text lines: each line lower-cased and split on ' . ' into
    sentences, kept when it has at least two; WikiText's escapes undone (see the module doc).
    Returns a list of paragraphs, each a list of sentence strings."""
    paragraphs = []
    for line in lines:
        sentences = line.strip().lower().split(" . ")
        if len(sentences) < 2:
            continue
        for old, new in _ESCAPES:
            sentences = [s.replace(old, new) for s in sentences]
        sentences = [" ".join(s.split()) for s in sentences]
        sentences = [s for s in sentences if s]
        if len(sentences) >= 2:
            paragraphs.append(sentences)
    return paragraphs


def read_paragraphs(path):
    """`paragraphs_of` a WikiText `.tokens` file. `DatasetError` (one line) when the file is
    missing, not UTF-8, or holds no paragraph of two or more sentences."""
    paragraphs = paragraphs_of(read_lines(path, "WikiText file", "pass WikiText's .tokens files"))
    if not paragraphs:
        raise DatasetError(f"{path} holds no paragraph of two or more sentences (' . '-separated): "
                           "the corpus is empty for BERT pretraining; pass WikiText's .tokens files (a paragraph a line)")
    return paragraphs


# --- offline generator -------------------------------------------------------------------------
# Version of what `generate_demo` writes, part of its `--demo` cache folder (`wikitext-2-demo-v1`): bump it
# whenever the bytes it writes change, so a demo set cached by the older code is not reused.
GENERATOR_VERSION = 1
DEMO_TOPICS = {
    "music": ["band", "album", "song", "guitar", "singer", "concert", "record", "tour", "chorus", "drummer"],
    "war": ["army", "battle", "soldier", "general", "fleet", "siege", "troops", "cannon", "fort", "regiment"],
    "nature": ["river", "forest", "mountain", "bird", "island", "valley", "lake", "storm", "tree", "coast"],
    "sport": ["team", "season", "match", "coach", "player", "league", "goal", "stadium", "cup", "striker"],
    "church": ["bishop", "church", "priest", "abbey", "saint", "chapel", "monk", "cathedral", "pope", "parish"],
    "science": ["star", "planet", "orbit", "comet", "telescope", "galaxy", "moon", "atom", "energy", "mass"],
}
# Phrase patterns: N = a topic noun, A = the adjective paired with the previous noun's topic.
DEMO_ADJECTIVES = {"music": "loud", "war": "bloody", "nature": "wild", "sport": "fast", "church": "holy",
                   "science": "distant"}
DEMO_PATTERNS = [
    "the A N was near the N",
    "in 1990 the N of the N became A",
    "a A N and the N were seen",
    "the N is one of the A N",
    "it was the N , not the N , that was A",
    "during the year the A N met the N",
]


def generate_demo(directory, seed=0, paragraphs=(600, 60, 120)):
    """Write a generated corpus as `wiki.{train,valid,test}.tokens` into `directory` (WikiText's
    layout: a leading space, sentences joined by ' . ', a blank line between paragraphs, headings
    ` = Title = `) and return it. Each paragraph has 2-6 sentences on one topic of `DEMO_TOPICS`;
    each sentence fills a pattern of `DEMO_PATTERNS` with the topic's nouns and its one adjective.
    """
    rng = np.random.default_rng(seed)
    topics = list(DEMO_TOPICS)
    directory = Path(directory)
    for split, n in zip(SPLITS, paragraphs):
        lines = [" = Demo = \n", " \n"]
        for _ in range(n):
            topic = topics[rng.integers(len(topics))]
            nouns = DEMO_TOPICS[topic]
            sentences = []
            for _ in range(rng.integers(2, 7)):
                words = DEMO_PATTERNS[rng.integers(len(DEMO_PATTERNS))].split()
                words = [nouns[rng.integers(len(nouns))] if w == "N" else DEMO_ADJECTIVES[topic] if w == "A" else w
                         for w in words]
                sentences.append(" ".join(words))
            lines += [" " + " . ".join(sentences) + " . \n", " \n"]
        with atomic_path(directory / split_file(split)) as tmp:
            tmp.write_text("".join(lines), encoding="utf-8")
    return directory


def wikitext_directory(data_dir=None, demo=False):
    """Directory holding the WikiText-2 files: the generated demo (in the cache), `data_dir` (the
    files themselves or the zip's `wikitext-2/` folder), or the cached/downloaded canonical zip."""
    if demo:
        directory = cdata.demo_cache_dir("wikitext-2-demo", version=GENERATOR_VERSION)
        if not all((directory / split_file(s)).exists() for s in SPLITS):
            generate_demo(directory)
        return directory
    return cdata.resolve_dataset("wikitext-2", required=REQUIRED, url=URL, sha1=SHA1, hint="--demo", data_dir=data_dir,
                                 folders=[ZIP_FOLDER])  # nothing deeper: /tmp must not pass via a cached copy


def load_splits(data_dir=None, demo=False):
    """(training paragraphs, test paragraphs, name of the split trained on: "train" or "valid")."""
    directory = wikitext_directory(data_dir, demo)
    train_split = "train" if (directory / split_file("train")).exists() else "valid"
    return (read_paragraphs(directory / split_file(train_split)), read_paragraphs(directory / split_file("test")),
            train_split)


def load_test(data_dir=None, demo=False):
    """The test split's paragraphs."""
    return read_paragraphs(wikitext_directory(data_dir, demo) / split_file("test"))
