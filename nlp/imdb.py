"""The IMDb large movie review dataset (the book's 15.1) and the offline demo generator.

Layout (as in the canonical `aclImdb_v1.tar.gz`): `aclImdb/{train,test}/{pos,neg}/*.txt`, one
review a file; any other class folders (`train/<class>/*.txt`, any number of classes) are read the
same way, the classes named by their folders (`class_folders`). `--data-dir` may point at `aclImdb/`
or at the folder holding it; without it the archive is downloaded (SHA-1 checked) into the dataset
cache. Reviews are lower-cased, the
`<br />` line breaks removed, and split into runs of letters and digits plus `!` and `?`.
An empty or binary review file is a one-line `DatasetError` naming it.

`generate_demo` writes reviews in the same layout whose label follows from their sentiment
words (see its docstring), for `--demo` and the fast tests.
"""
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common import data as cdata
from common.errors import DatasetError
from common.files import atomic_path
from nlp.text import read_lines

IMDB_URL = "http://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
IMDB_SHA1 = "01ada507287d82875905620988597833ad4e0903"
LABELS = ("negative", "positive")
FOLDERS = ("neg", "pos")  # label 0, 1
REQUIRED = [f"{split}/{folder}" for split in ("train", "test") for folder in FOLDERS]
UNLABELLED = "unsup"  # aclImdb's train/unsup: reviews without a label
_TOKEN = re.compile(r"[a-z0-9]+|[!?]")


@dataclass
class Reviews:
    """`tokens` (a token list per review) and `labels` int32 `(reviews,)` (0 negative, 1 positive)."""

    tokens: list
    labels: np.ndarray

    def __len__(self):
        return len(self.labels)

    def subset(self, indices):
        return Reviews([self.tokens[i] for i in indices], self.labels[indices])


def tokenize_review(text):
    """Lower-cased word tokens of one review (`<br />` removed): runs of letters/digits, `!`, `?`."""
    return _TOKEN.findall(text.lower().replace("<br />", " "))


def imdb_directory(data_dir=None, demo=False):
    """The `aclImdb` folder: under `data_dir`, the generated demo (in the cache), or the
    cached/downloaded canonical archive."""
    if demo:
        directory = cdata.demo_cache_dir("imdb-demo", version=GENERATOR_VERSION) / "aclImdb"
        if not (directory / "test" / "pos").is_dir():
            generate_demo(directory)
        return directory
    return cdata.resolve_dataset("aclImdb", required=REQUIRED if data_dir is None else ["train", "test"],
                                 url=IMDB_URL, sha1=IMDB_SHA1, data_dir=data_dir, hint="--demo")


def class_folders(directory):
    """The class folders of `directory/train` in name order (`("neg", "pos")` for aclImdb, whose
    unlabelled `unsup` is left out); fewer than two is a `DatasetError`."""
    train = Path(directory) / "train"
    folders = tuple(sorted(p.name for p in train.iterdir() if p.is_dir() and p.name != UNLABELLED))
    if len(folders) < 2:
        raise DatasetError(f"{train} holds {len(folders)} class folder{'' if len(folders) == 1 else 's'}; "
                           "a classifier needs one folder of *.txt files per class, at least two")
    return folders


def class_names(folders):
    """The classes' names: aclImdb's `neg`/`pos` are `negative`/`positive`, other folders their own names."""
    return list(LABELS) if tuple(folders) == FOLDERS else list(folders)


def read_imdb(directory, split, folders=FOLDERS):
    """`Reviews` of `directory/<split>/<folder>/*.txt`, labelled by the folder's index in `folders`
    (files in name order, folder by folder); a `split` folder of another class is a `DatasetError`."""
    tokens, labels = [], []
    other = sorted({p.name for p in (Path(directory) / split).glob("*") if p.is_dir()} - {*folders, UNLABELLED})
    if other:
        raise DatasetError(f"{Path(directory) / split / other[0]} is a class the training split lacks "
                           f"({', '.join(folders)}); remove it or add train/{other[0]}")
    for label, folder in enumerate(folders):
        files = sorted((Path(directory) / split / folder).glob("*.txt"))
        if not files:
            raise DatasetError(f"no reviews in {Path(directory) / split / folder}; expected *.txt files")
        for path in files:
            words = tokenize_review("\n".join(read_lines(path, "review", "remove it or restore its text")))
            if not words:
                raise DatasetError(f"review {path} is empty; remove it or restore its text")
            tokens.append(words)
        labels += [label] * len(files)
    return Reviews(tokens, np.asarray(labels, dtype=np.int32))


# --- the demo generator ------------------------------------------------------------------------
# Version of what `generate_demo` writes, part of its `--demo` cache folder (`imdb-demo-v1/aclImdb`): bump it
# whenever the bytes it writes change, so a demo set cached by the older code is not reused.
GENERATOR_VERSION = 1
DEMO_POSITIVE = ["great", "excellent", "wonderful", "brilliant", "superb", "moving", "beautiful", "fun",
                 "masterpiece", "loved", "enjoyable", "perfect"]
DEMO_NEGATIVE = ["awful", "boring", "terrible", "dull", "worst", "waste", "poor", "stupid", "mess", "hated",
                 "annoying", "bad"]
DEMO_FILLER = ["the", "movie", "film", "a", "and", "of", "plot", "acting", "story", "is", "was", "it", "this",
               "actor", "scene", "director", "with", "to", "ending", "characters", "music", "i", "in", "script"]


def demo_review(label, rng):
    """One generated review (a string) of `label` (0 negative, 1 positive): 30-120 filler words
    with 3-7 words of its own sentiment and 0-2 of the other one, at random places."""
    length = int(rng.integers(30, 121))
    words = np.asarray(DEMO_FILLER, dtype=object)[rng.integers(len(DEMO_FILLER), size=length)]
    own, other = (DEMO_POSITIVE, DEMO_NEGATIVE) if label == 1 else (DEMO_NEGATIVE, DEMO_POSITIVE)
    cues = [own[i] for i in rng.integers(len(own), size=rng.integers(3, 8))]
    cues += [other[i] for i in rng.integers(len(other), size=rng.integers(0, 3))]
    places = rng.choice(length, size=len(cues), replace=False)
    words[places] = cues
    return " ".join(words) + " ."


def generate_demo(directory, seed=0, per_class=(500, 250)):
    """Write `per_class` reviews per label for train and test as
    `directory/{train,test}/{neg,pos}/<i>_<rating>.txt` (the aclImdb names) and return
    `directory`."""
    rng = np.random.default_rng(seed)
    directory = Path(directory)
    with atomic_path(directory, directory=True) as tmp:
        for split, count in zip(("train", "test"), per_class):
            for label, folder in enumerate(FOLDERS):
                (tmp / split / folder).mkdir(parents=True)
                for i in range(count):
                    rating = int(rng.integers(7, 11) if label else rng.integers(1, 5))
                    (tmp / split / folder / f"{i}_{rating}.txt").write_text(demo_review(label, rng), encoding="utf-8")
    return directory
