"""TensorFlow Datasets as a data source: a dataset a user prepared with `tfds build` is read offline.

`load(name, split, data_dir)` gives the examples of a prepared dataset as numpy dicts (TFDS's own
feature names: `{"text": b"...", "label": 1}` for `imdb_reviews`); `describe` gives what `config.json`
records. Nothing is downloaded: a dataset that is not prepared in `data_dir` is one line naming the
`tfds build` command that prepares it. `name` is TFDS's `NAME[/CONFIG][:VERSION]`; `NAME:CONFIG` is
read as `NAME/CONFIG` when the part after the colon is not a version (`movielens:100k-ratings`).

TensorFlow and tensorflow_datasets are imported when a function is called, never at import.
"""
import re

from common.errors import DlsuiteError, UsageError

INSTALL = 'pip install "dlsuite[tfds]"'
_VERSION = re.compile(r"\d+(\.\d+){0,2}")


def _tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise UsageError(f"reading --tfds needs tensorflow-datasets; {INSTALL}") from None
    return tfds


def dataset_name(name):
    """TFDS's spelling of `name`: `NAME:CONFIG` -> `NAME/CONFIG`; `NAME[/CONFIG][:VERSION]` unchanged."""
    base, colon, tail = name.partition(":")
    if colon and "/" not in base and not _VERSION.fullmatch(tail):
        return f"{base}/{tail}"
    return name


def base_name(name):
    """The dataset without config and version: `movielens/100k-ratings:0.1.1` -> `movielens`."""
    return dataset_name(name).split(":")[0].split("/")[0]


def default_dir():
    """TFDS's own data folder (`$TFDS_DATA_DIR`, else `~/tensorflow_datasets`)."""
    return _tfds().core.constants.DATA_DIR


def _builder(name, data_dir):
    tfds = _tfds()
    try:
        return tfds.builder(dataset_name(name), data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise UsageError(f"TFDS has no dataset {base_name(name)!r} (--tfds {name}); see "
                         "https://www.tensorflow.org/datasets/catalog") from None
    except ValueError as e:  # an unknown config or version
        raise UsageError(f"--tfds {name}: {str(e).splitlines()[0]}") from None


def _not_prepared(name, data_dir):
    where = data_dir or default_dir()
    return DlsuiteError(f"TFDS dataset {dataset_name(name)} is not prepared in {where}; run `tfds build "
                        f"{dataset_name(name)} --data_dir {where}` on a machine with internet, or pass --tfds-dir")


def load(name, split, data_dir=None, batch_size=None):
    """The examples of split `split` of the prepared TFDS dataset `name` in `data_dir` (default TFDS's
    own folder): an iterable of dicts of numpy values (`tfds.as_numpy`, in the dataset's stored order);
    with `batch_size`, dicts of arrays of that many examples (for a vectorised reader; TFDS's `batch_size`).
    Never downloads; a dataset not prepared there is a `DlsuiteError`, an unknown name, config or split
    a `UsageError`, each one line."""
    tfds = _tfds()
    _builder(name, data_dir)  # an unknown name or config: one line before anything is read
    try:
        dataset = tfds.load(dataset_name(name), split=split, data_dir=data_dir, download=False, try_gcs=False,
                            batch_size=batch_size)
    except AssertionError as e:  # TFDS asserts the data folder exists
        if "could not find data" in str(e):
            raise _not_prepared(name, data_dir) from None
        raise
    except ValueError as e:
        if "split" in str(e).lower():
            raise UsageError(f"--tfds {name} has no split {split!r}: {str(e).splitlines()[0]}") from None
        raise
    return tfds.as_numpy(dataset)


def describe(name, data_dir=None):
    """What `config.json` records of a TFDS source: `{"tfds": name, "version": "1.0.0", "splits": [...]}`."""
    builder = _builder(name, data_dir)
    return {"tfds": dataset_name(name), "version": str(builder.info.version),
            "splits": sorted(builder.info.splits.keys())}
