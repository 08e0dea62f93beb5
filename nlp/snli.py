"""SNLI sentence pairs (the book's 15.4) in both real layouts, the held-back split, and the
offline demo generator.

Layouts, found in `--data-dir` or in its `snli_1.0/` folder (the zip's), nothing deeper:

- official `snli_1.0.zip`: `snli_1.0_{train,dev,test}.txt`, tab separated with a header row;
  the label is `gold_label`, the sentences are `sentence1_binary_parse` and
  `sentence2_binary_parse` with their parentheses stripped, as the book does;
- tokenised, one pair a line (InferSent's): `s1.{split}` (premises), `s2.{split}` (hypotheses),
  `labels.{split}` (the real dev set is in `../shared/data/snli/`);
- JSONL, one object a line, as SNLI's and MultiNLI's zips ship them (`snli_1.0_{split}.jsonl`,
  `multinli_1.0_{train,dev_matched,dev_mismatched}.jsonl`, or `{split}.jsonl`): `gold_label`,
  `sentence1`, `sentence2` (their `*_binary_parse` fields, where present, give the tokens as above;
  every other field is ignored). Also found in `multinli_1.0/`.

`--format` picks one layout; `auto` reads each split from the first layout that has it, in the
order above (SNLI's zip holds the same pairs as `.txt` and `.jsonl`). `tfds_readers` reads TFDS's
`snli` and `multi_nli` instead.

Pairs labelled '-' (no annotator majority) are dropped; any other label outside
entailment / contradiction / neutral, and files of different line counts, are one-line
`DatasetError`s. Sentences are lower-cased and split on whitespace. Without `--data-dir` the
canonical `snli_1.0.zip` is downloaded (SHA-1 checked) into the dataset cache.

`nlp.classify.holdout_indices` splits a seeded held-back part off the training split
(`--holdout 0.1`) for data that has no separate evaluation split. `generate_demo` writes pairs whose label
follows from word-level rules (see its docstring) in either layout.
"""
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common import data as cdata
from common.errors import DatasetError, UsageError
from common.files import atomic_path
from nlp.classify import holdout_indices
from nlp.text import read_lines

SNLI_URL = "https://nlp.stanford.edu/projects/snli/snli_1.0.zip"
SNLI_SHA1 = "9fcde07509c7e87ec61c640c1b2753d9041758e4"
LABELS = ("entailment", "contradiction", "neutral")  # the book's label indices 0, 1, 2
SPLITS = ("train", "dev", "test")
ZIP_FOLDER = "snli_1.0"  # what snli_1.0.zip extracts to
ZIP_FOLDERS = (ZIP_FOLDER, "multinli_1.0")
FORMATS = ("official", "jsonl", "infersent")  # --format (besides auto), in auto's order of preference
JSONL_PREFIXES = ("snli_1.0_", "multinli_1.0_")
# TFDS's label order (ClassLabel names of `snli` and `multi_nli`; -1: no gold label) and split names
TFDS_LABELS = ("entailment", "neutral", "contradiction")
TFDS_SPLITS = {"snli": {"train": "train", "dev": "validation", "test": "test"},
               "multi_nli": {"train": "train", "dev_matched": "validation_matched",
                             "dev_mismatched": "validation_mismatched"}}
HOLDOUT = "holdout"
_PARENS = re.compile(r"[()]")
_SPACES = re.compile(r"\s{2,}")


@dataclass
class Pairs:
    """Sentence pairs: `premises`, `hypotheses` (lists of token lists, lower-cased) and
    `labels` int32 `(pairs,)` indexing `LABELS`."""

    premises: list
    hypotheses: list
    labels: np.ndarray

    def __len__(self):
        return len(self.labels)

    def subset(self, indices):
        """The pairs at `indices` (an int array), in that order."""
        return Pairs([self.premises[i] for i in indices], [self.hypotheses[i] for i in indices],
                     self.labels[indices])


def strip_parse(text):
    """A binary parse such as `( ( A man ) ( is ( sleeping . ) ) )` as the plain sentence
    `A man is sleeping .` (parentheses removed, runs of spaces collapsed, as the book)."""
    return _SPACES.sub(" ", _PARENS.sub("", text)).strip()


def _tokens(sentence):
    return sentence.lower().split()


def _pairs(premises, hypotheses, labels, source, first_line=1):
    """`Pairs` of the lines whose label is not '-'; `DatasetError` naming the line of the first
    unknown label (`first_line`: the file line of the first pair, or a list of each pair's line)."""
    index = {**{name: i for i, name in enumerate(LABELS)}, "-": -1}
    ids = np.fromiter((index.get(label, -2) for label in labels), dtype=np.int32, count=len(labels))
    bad = np.flatnonzero(ids == -2)
    if len(bad):
        line = first_line[bad[0]] if isinstance(first_line, list) else bad[0] + first_line
        raise DatasetError(f"{source} line {line}: unknown label {labels[bad[0]]!r}; "
                           f"expected one of {', '.join(LABELS)} (or '-', which is skipped)")
    keep = np.flatnonzero(ids >= 0)
    return Pairs([_tokens(premises[i]) for i in keep], [_tokens(hypotheses[i]) for i in keep], ids[keep])


def read_official(path):
    """`Pairs` of one `snli_1.0_<split>.txt` file (tab separated, header row naming
    `gold_label`, `sentence1_binary_parse`, `sentence2_binary_parse`)."""
    lines = read_lines(path, "SNLI file", "pass the snli_1.0 files as distributed")
    if not lines:
        raise DatasetError(f"{path} is empty; pass the snli_1.0 files as distributed (a header row, then one "
                           "pair a line)")
    header = lines[0].split("\t")
    columns = ("gold_label", "sentence1_binary_parse", "sentence2_binary_parse")
    missing = [c for c in columns if c not in header]
    if missing:
        raise DatasetError(f"{path}: the header row has no {', '.join(missing)} column; is it an snli_1.0 file?")
    label_at, first_at, second_at = (header.index(c) for c in columns)
    rows = [line.split("\t") for line in lines[1:] if line.strip()]
    if not rows:
        raise DatasetError(f"{path} holds its header row but no pair; pass the snli_1.0 files as distributed")
    short = next((i for i, r in enumerate(rows) if len(r) <= max(label_at, first_at, second_at)), None)
    if short is not None:
        raise DatasetError(f"{path} line {short + 2}: {len(rows[short])} columns where the header has {len(header)}")
    return _pairs([strip_parse(r[first_at]) for r in rows], [strip_parse(r[second_at]) for r in rows],
                  [r[label_at].strip() for r in rows], path, first_line=2)


def read_tokenised(directory, split):
    """`Pairs` of `s1.<split>`, `s2.<split>` and `labels.<split>` in `directory` (one pair a
    line); `DatasetError` naming both counts when the files' line counts differ."""
    directory = Path(directory)
    files = [directory / f"{stem}.{split}" for stem in ("s1", "s2", "labels")]
    premises, hypotheses, labels = (read_lines(f, "SNLI file", "pass the s1/s2/labels files as distributed")
                                    for f in files)
    if not premises:
        raise DatasetError(f"{files[0]} is empty; pass the s1/s2/labels files as distributed (one pair a line)")
    for other, lines in ((files[1], hypotheses), (files[2], labels)):
        if len(lines) != len(premises):
            raise DatasetError(f"{files[0].name} has {len(premises)} lines but {other.name} has {len(lines)}; "
                               "the files must hold one pair a line")
    return _pairs(premises, hypotheses, [label.strip() for label in labels], files[2])


def read_jsonl(path):
    """`Pairs` of one SNLI / MultiNLI JSONL file (`gold_label`, `sentence1`, `sentence2` per line; the
    `*_binary_parse` fields, where present, stripped of their parentheses; other fields ignored)."""
    import json

    lines = read_lines(path, "NLI JSONL file", "pass SNLI's or MultiNLI's .jsonl files as distributed")
    numbers = [i for i, line in enumerate(lines, 1) if line.strip()]
    if not numbers:
        raise DatasetError(f"{path} is empty; it needs one JSON object a line with gold_label, sentence1, sentence2")
    firsts, seconds, labels = [], [], []
    for number in numbers:
        try:
            row = json.loads(lines[number - 1])
        except ValueError as e:
            raise DatasetError(f"{path} line {number} is not JSON ({e.msg}); write one object a line") from None
        missing = [k for k in ("gold_label", "sentence1", "sentence2") if not isinstance(row, dict) or k not in row]
        if missing:
            raise DatasetError(f"{path} line {number} has no {', '.join(missing)}; SNLI's JSONL gives every pair "
                               "gold_label, sentence1 and sentence2")
        parse = [row.get(f"sentence{i}_binary_parse") for i in (1, 2)]
        firsts.append(strip_parse(parse[0]) if parse[0] else row["sentence1"])
        seconds.append(strip_parse(parse[1]) if parse[1] else row["sentence2"])
        labels.append(str(row["gold_label"]).strip())
    return _pairs(firsts, seconds, labels, path, first_line=numbers)


def _jsonl_split(path):
    stem = path.stem
    return next((stem[len(p):] for p in JSONL_PREFIXES if stem.startswith(p)), stem)


def find_splits(directory, format="auto"):
    """Split name -> reader (a function returning `Pairs`) for every split in `directory` in `format`
    (one of `FORMATS`), or with "auto" in every format, the official files taking precedence over JSONL
    and JSONL over tokenised ones of the same split."""
    directory = Path(directory)
    found = {}
    if format in ("auto", "infersent"):
        for path in sorted(directory.glob("labels.*")):
            split = path.name.split(".", 1)[1]
            found[split] = lambda split=split: read_tokenised(directory, split)
    if format in ("auto", "jsonl"):
        for path in sorted(directory.glob("*.jsonl")):
            found[_jsonl_split(path)] = lambda path=path: read_jsonl(path)
    if format in ("auto", "official"):
        for path in sorted(directory.glob("snli_1.0_*.txt")):
            found[path.stem[len("snli_1.0_"):]] = lambda path=path: read_official(path)
    return found


def tfds_readers(name, examples):
    """Split name (`train`, `dev`, `test`; MultiNLI's `dev_matched`, `dev_mismatched`) -> reader of the
    TFDS dataset `name` (`snli` or `multi_nli`), `examples(tfds_split)` giving its numpy dicts (`premise`,
    `hypothesis`, `label` in `TFDS_LABELS` order, -1 dropped); sentences lower-cased and split on whitespace."""
    from common import tfds_source

    to_ours = np.asarray([LABELS.index(n) for n in TFDS_LABELS] + [-1], np.int32)  # TFDS's -1 -> -1

    def read(split):
        rows = list(examples(split))
        ids = to_ours[np.asarray([r["label"] for r in rows], np.int64).reshape(-1)]
        keep = np.flatnonzero(ids >= 0)
        return Pairs([_tokens(rows[i]["premise"].decode("utf-8")) for i in keep],
                     [_tokens(rows[i]["hypothesis"].decode("utf-8")) for i in keep], ids[keep])

    splits = TFDS_SPLITS[tfds_source.base_name(name)]  # `snli:1.1.0` names a version of snli
    return {ours: lambda split=split: read(split) for ours, split in splits.items()}


def _holds_splits(directory):
    return directory.is_dir() and any(any(directory.glob(pattern))
                                      for pattern in ("labels.*", "snli_1.0_*.txt", "*.jsonl"))


def snli_directory(data_dir=None, demo=False):
    """Directory holding an SNLI layout: `data_dir` or its `snli_1.0/` (the folder the zip
    extracts to), nothing deeper (an unrelated folder such as /tmp must not pass for SNLI through
    some copy below it); the generated demo set (in the cache); or the cached/downloaded
    canonical `snli_1.0.zip`."""
    if demo:
        directory = cdata.demo_cache_dir("snli-demo", version=GENERATOR_VERSION)
        if not (directory / "labels.test").exists():
            generate_demo(directory, seed=0)
        return directory
    if data_dir is None:
        return cdata.resolve_dataset("snli", required=["snli_1.0_train.txt"], url=SNLI_URL, sha1=SNLI_SHA1,
                                     hint="--demo")
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DatasetError(f"--data-dir {root} does not exist or is not a directory")
    found = next((d for d in (root, *(root / f for f in ZIP_FOLDERS)) if _holds_splits(d)), None)
    if found is None:
        raise DatasetError(f"snli: no snli_1.0_<split>.txt, <split>.jsonl nor s1/s2/labels.<split> files in {root} "
                           f"(nor in its {'/ or '.join(ZIP_FOLDERS)}/); pass the folder that holds them")
    first = sorted(p.name for p in [*found.glob("labels.*"), *found.glob("snli_1.0_*.txt"),
                                    *found.glob("*.jsonl")])[0]
    return cdata.resolve_dataset("snli", required=[first], data_dir=found)


@dataclass
class Splits:
    """What a run trains on and evaluates: `train` (the training split minus the held-back
    parts), `val` (a seeded part of it for per-epoch validation, maybe empty), `evaluation`
    (the split scored once at the end) and `names` (split name -> reader, plus `holdout`)."""

    train: Pairs
    val: Pairs
    evaluation: Pairs
    evaluation_name: str
    train_name: str
    readers: dict


def _training_name(readers, directory):
    """The split to train on: `train`, else `dev`, else `test`, else any there is."""
    name = "train" if "train" in readers else next((s for s in ("dev", "test") if s in readers),
                                                     next(iter(readers), None))
    if name is None:
        raise DatasetError(f"no SNLI split in {directory}")
    return name


def _read_split(read, name, directory):
    """The pairs `read()` gives for split `name`; one-line `DatasetError` when it holds none."""
    pairs = read()
    if len(pairs) == 0 and name == HOLDOUT:
        raise UsageError("--holdout holds back no pair of this small training split; raise it")
    if len(pairs) == 0:
        raise DatasetError(f"the {name} split in {directory} holds no labelled pairs (every label is '-'); "
                           "pass a split with labelled pairs")
    return pairs


def _evaluation_name(readers, train_name, holdout, directory):
    """The split a run scores: `holdout` when it holds one back, else `test`, else `dev` (not trained on)."""
    if holdout > 0:
        return HOLDOUT
    name = next((s for s in ("test", "dev", "dev_matched") if s in readers and s != train_name), None)
    if name is None:
        raise UsageError(f"{directory} holds only the {train_name} split: pass --holdout 0.1 to hold a part "
                         "of it back for evaluation")
    return name


def load_splits(directory, holdout=0.0, val_ratio=0.0, seed=0, readers=None):
    """Read the splits of `directory` (or `readers`, split name -> reader, from `find_splits` or
    `tfds_readers`, with `directory` naming their source) and arrange them for training (`Splits`).

    Trains on `train`, else on `dev` when it is the only labelled split besides `test` (the
    shared copy of SNLI holds only dev). `holdout` > 0 holds a seeded part of the training split
    back as the `holdout` split, which is then the evaluation split; otherwise `test`, else
    `dev` (when not trained on). `val_ratio` carves the per-epoch validation part out of what
    remains for training.
    """
    readers = find_splits(directory) if readers is None else readers
    train_name = _training_name(readers, directory)
    full = _read_split(readers[train_name], train_name, directory)
    kept, held = holdout_indices(len(full), holdout, seed)  # (all, none) when holdout is 0
    if holdout > 0:
        readers = {**readers, HOLDOUT: lambda: full.subset(held)}
    evaluation_name = _evaluation_name(readers, train_name, holdout, directory)
    rest = full.subset(kept)
    fit, val = holdout_indices(len(rest), val_ratio, seed + 1)
    evaluation = _read_split(readers[evaluation_name], evaluation_name, directory)  # before any training
    return Splits(rest.subset(fit), rest.subset(val), evaluation, evaluation_name, train_name, readers)


def read_evaluation(directory, name=None, holdout=0.0, seed=0, readers=None):
    """`(name, Pairs)` of the split `name` of `directory`, by default the one `load_splits` scores
    with the same `holdout` and `seed`. Reads that split's files once and nothing else, except the
    training split (once) for `holdout`. `UsageError` listing the splits there are for another name.
    `readers`: as for `load_splits`."""
    readers = find_splits(directory) if readers is None else readers
    train_name = _training_name(readers, directory)
    if holdout > 0:
        def held_back(read_train=readers[train_name]):
            full = _read_split(read_train, train_name, directory)
            return full.subset(holdout_indices(len(full), holdout, seed)[1])
        readers = {**readers, HOLDOUT: held_back}
    name = name or _evaluation_name(readers, train_name, holdout, directory)
    if name not in readers:
        raise UsageError(f"no split {name!r} here; choose one of {', '.join(sorted(readers))}")
    return name, _read_split(readers[name], name, directory)


# --- the demo generator ------------------------------------------------------------------------
# Version of what `generate_demo` writes, part of its `--demo` cache folder (`snli-demo-v1`): bump it
# whenever the bytes it writes change, so a demo set cached by the older code is not reused.
GENERATOR_VERSION = 1
DEMO_SUBJECTS = {"man": "person", "woman": "person", "boy": "child", "girl": "child", "dog": "animal",
                 "cat": "animal", "horse": "animal", "teenager": "person"}
DEMO_VERBS = ["running", "sleeping", "eating", "singing", "swimming", "dancing", "reading", "cooking"]
DEMO_PLACES = ["in the park", "on the beach", "at home", "in a kitchen", "near a river", "on a street"]
DEMO_EXTRAS = ["for a prize", "with friends", "to lose weight", "after work", "for the first time", "on vacation"]
DEMO_COLOURS = ["red", "blue", "green", "black", "white"]


def demo_pair(rng):
    """One generated (premise, hypothesis, label) triple of strings.

    Premise: `a [colour] SUBJECT is VERB PLACE .` The label follows from word-level rules:
    entailment keeps the verb and names the subject or its hypernym (man -> person);
    contradiction changes the verb (or makes it `nobody is VERB`); neutral keeps subject and
    verb and adds a purpose or company the premise does not mention.
    """
    subjects = list(DEMO_SUBJECTS)
    subject = subjects[rng.integers(len(subjects))]
    verb = DEMO_VERBS[rng.integers(len(DEMO_VERBS))]
    place = DEMO_PLACES[rng.integers(len(DEMO_PLACES))]
    colour = f"{DEMO_COLOURS[rng.integers(len(DEMO_COLOURS))]} " if rng.random() < 0.5 else ""
    premise = f"a {colour}{subject} is {verb} {place} ."
    label = LABELS[rng.integers(3)]
    who = DEMO_SUBJECTS[subject] if rng.random() < 0.5 else subject
    where = f" {place}" if rng.random() < 0.5 else ""
    the = "a" if rng.random() < 0.5 else "the"
    if label == "entailment":
        hypothesis = f"{the} {who} is {verb}{where} ."
    elif label == "contradiction":
        other = DEMO_VERBS[(DEMO_VERBS.index(verb) + rng.integers(1, len(DEMO_VERBS))) % len(DEMO_VERBS)]
        hypothesis = f"nobody is {verb}{where} ." if rng.random() < 0.2 else f"{the} {who} is {other}{where} ."
    else:
        hypothesis = f"{the} {who} is {verb} {DEMO_EXTRAS[rng.integers(len(DEMO_EXTRAS))]} ."
    return premise, hypothesis, label


def binary_parse(sentence):
    """A right-branching binary parse of a sentence's tokens, in SNLI's bracket style (the
    inverse of `strip_parse`): `a man sleeps .` -> `( a ( man ( sleeps . ) ) )`."""
    tokens = sentence.split()
    text = tokens[-1]
    for token in reversed(tokens[:-1]):
        text = f"( {token} {text} )"
    return text


def write_official(path, premises, hypotheses, labels):
    """Write pairs as an `snli_1.0_<split>.txt` file (header, tab separated, binary parses)."""
    header = ["gold_label", "sentence1_binary_parse", "sentence2_binary_parse", "sentence1_parse",
              "sentence2_parse", "sentence1", "sentence2", "captionID", "pairID"]
    rows = ["\t".join(header)]
    for i, (p, h, label) in enumerate(zip(premises, hypotheses, labels)):
        rows.append("\t".join([label, binary_parse(p), binary_parse(h), f"(ROOT {p})", f"(ROOT {h})", p, h,
                               f"{i}.jpg#0", f"{i}.jpg#0r1{label[:1]}"]))
    with atomic_path(Path(path)) as tmp:
        tmp.write_text("\n".join(rows) + "\n", encoding="utf-8")


def write_tokenised(directory, split, premises, hypotheses, labels):
    """Write pairs as `s1.<split>`, `s2.<split>`, `labels.<split>` in `directory`."""
    for stem, lines in (("s1", premises), ("s2", hypotheses), ("labels", labels)):
        with atomic_path(Path(directory) / f"{stem}.{split}") as tmp:
            tmp.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def generate_demo(directory, seed=0, sizes=(4000, 500, 500), layout="tokenised", unlabelled=0.02):
    """Write generated pairs (`demo_pair`) for train/dev/test in `layout` ("tokenised" or
    "official") into `directory` and return it; a split of size 0 is left out, and a
    `unlabelled` share of pairs is labelled '-' as in the real files (the readers drop them)."""
    rng = np.random.default_rng(seed)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for split, size in zip(SPLITS, sizes):
        if size == 0:
            continue
        triples = [demo_pair(rng) for _ in range(size)]
        premises, hypotheses, labels = (list(t) for t in zip(*triples))
        labels = ["-" if rng.random() < unlabelled else label for label in labels]
        if layout == "official":
            write_official(directory / f"snli_1.0_{split}.txt", premises, hypotheses, labels)
        else:
            write_tokenised(directory, split, premises, hypotheses, labels)
    return directory
