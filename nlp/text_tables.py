"""Labelled text in a table: a CSV, TSV or JSONL file with a text column and a label column.

Layout (`--data-dir` holding one file per split, the format from the extension):

    train.csv   test.csv        text,label / "a great movie",pos / ...   (a header row names the columns)
    train.tsv   test.tsv        the same, tab-separated
    train.jsonl test.jsonl      {"text": "a great movie", "label": "pos"}  one object a line

Labels are any strings (or numbers); the classes are the training split's labels, sorted (numerically
when every label is an integer), and a test label the training split lacks is an error. Each bad file
is a one-line `DatasetError` naming it (and the line): missing column, empty file, a label column with
one class only, a line that is not a JSON object.
"""
import json
from pathlib import Path

import numpy as np

from common.errors import DatasetError, UsageError
from nlp.text import read_lines

EXTENSIONS = (".csv", ".tsv", ".jsonl")


def parse_columns(text):
    """`--columns text,label` -> ("text", "label"): the text column's name, then the label column's."""
    names = tuple(n.strip() for n in text.split(","))
    if len(names) != 2 or not all(names) or names[0] == names[1]:
        raise UsageError(f"--columns takes two column names, the text's and the label's, like text,label; got {text!r}")
    return names


def split_files(directory):
    """{split: path} of the `train.*` / `test.*` tables in `directory` (one format per split)."""
    found = {}
    for path in sorted(Path(directory).glob("*")):
        if path.suffix in EXTENSIONS and path.stem in ("train", "test") and path.is_file():
            if path.stem in found:
                raise DatasetError(f"{directory} holds {found[path.stem].name} and {path.name}; keep one table "
                                   f"per split")
            found[path.stem] = path
    return found


def detect_format(directory, format="auto"):
    """`format`, or for "auto" the layout `directory` holds: "table" (`train.csv`/`.tsv`/`.jsonl` beside
    `test.*`) or "folders" (aclImdb's `train/` and `test/` with a folder per class, also under `aclImdb/`).
    Both, or neither, is a `DatasetError` naming the folder."""
    if format != "auto":
        return format
    from common.data import layouts

    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise DatasetError(f"--data-dir {directory} does not exist or is not a directory")
    found = [name for name, present in (("table", split_files(directory)),
                                        ("folders", layouts(directory, ["train", "test"]))) if present]
    if len(found) != 1:
        raise DatasetError(f"{directory} holds " + (" and ".join(f"{f} layout" for f in found) + "; pass --format"
                           if found else "neither train.csv/.tsv/.jsonl tables nor train/ and test/ class folders"))
    return found[0]


def read_table(path, columns):
    """Columns `columns` of the table at `path` as lists of strings, with where each row is (for
    messages): ({name: [str, ...]}, ["line 3", ...] for JSONL, ["row 1", ...] (after the header) for
    CSV/TSV, whose quoted texts may span lines). An empty value is a `DatasetError` naming its row."""
    path = Path(path)
    lines = read_lines(path, "text table", "pass a UTF-8 CSV, TSV or JSONL file")
    if not any(line.strip() for line in lines):
        raise DatasetError(f"{path} is empty; it needs a row per text")
    if path.suffix == ".jsonl":
        rows, numbers = _jsonl_rows(path, lines)
        found = sorted({k for row in rows for k in row})
        values = {}
        for name in columns:
            if name not in found:
                raise DatasetError(f"{path} has no field {name!r} (fields: {', '.join(found)}); pass --columns "
                                   "TEXT,LABEL naming its text and label fields")
            missing = next((n for row, n in zip(rows, numbers) if row.get(name) is None), None)
            if missing is not None:
                raise DatasetError(f"{path} line {missing} has no {name!r}; give every line a {name!r}")
            values[name] = [str(row[name]) for row in rows]
        return values, [f"line {n}" for n in numbers]
    import pandas as pd

    try:
        table = pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",", dtype=str, keep_default_na=False,
                            quoting=3 if path.suffix == ".tsv" else 0)
    except (pd.errors.ParserError, ValueError) as e:
        raise DatasetError(f"{path}: {str(e).strip().splitlines()[-1]}") from None
    for name in columns:
        if name not in table.columns:
            raise DatasetError(f"{path} has no column {name!r} (columns: {', '.join(map(str, table.columns))}); "
                               "pass --columns TEXT,LABEL naming its text and label columns")
    if not len(table):
        raise DatasetError(f"{path} holds a header row only; it needs a row per text")
    for name in columns:
        empty = np.flatnonzero(table[name].str.strip().to_numpy() == "")
        if len(empty):
            raise DatasetError(f"{path} row {empty[0] + 1} (after the header) has no {name!r}; fill it or remove "
                               "the row")
    return {name: table[name].tolist() for name in columns}, [f"row {i}" for i in range(1, len(table) + 1)]


def _jsonl_rows(path, lines):
    rows, numbers = [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise DatasetError(f"{path} line {number} is not JSON ({e.msg}); write one JSON object a line") from None
        if not isinstance(row, dict):
            raise DatasetError(f"{path} line {number} is not a JSON object; write one object a line")
        rows.append(row)
        numbers.append(number)
    return rows, numbers


def class_names(labels, path):
    """The sorted distinct `labels` (numerically when all are integers) of the training table `path`;
    one class only is a `DatasetError`."""
    names = sorted(set(labels))
    if all(n.lstrip("-").isdigit() for n in names):
        names = sorted(names, key=int)
    if len(names) < 2:
        raise DatasetError(f"{path}: the label column holds one class only ({names[0]!r}); a classifier needs "
                           "at least two")
    return names


def label_indices(labels, names, path, rows):
    """`labels` (strings) as int32 indices into `names` `(rows,)`; a label outside `names` is a
    `DatasetError` naming `path` and its row (`rows`: where each is, from `read_table`)."""
    order = np.argsort(names)
    sorted_names = np.asarray(names, dtype=object)[order]
    values = np.asarray(labels, dtype=object)
    at = np.clip(np.searchsorted(sorted_names, values), 0, len(names) - 1)
    unknown = np.flatnonzero(sorted_names[at] != values)
    if len(unknown):
        raise DatasetError(f"{path} {rows[unknown[0]]}: label {labels[unknown[0]]!r} is not one of the "
                           f"training classes ({', '.join(names)})")
    return order[at].astype(np.int32)
