"""Splitting recommender data: MovieLens interactions into training, validation and test, CTR rows into
training and validation.

The test split is random (`split_random`, seeded) or sequence-aware (`split_seq_aware`: each
user's latest interaction); `hold_out_validation` carves the validation set out of the training
part with draws of its own (`validation_rng`), and `load_splits` gives a run's three parts
(`Splits`). Vectorized over all interactions (no Python loop over users or items).
"""
import dataclasses
from dataclasses import dataclass

import numpy as np

from common.errors import DatasetError, UsageError
from recsys.movielens import Interactions
from recsys.tables import load_interactions

def _check_split(train, test, how):
    for name, part in (("training", train), ("test", test)):
        if len(part) == 0:
            raise DatasetError(f"{how} split of {train.source or 'the data'} left the {name} set empty "
                               f"({len(train) + len(test)} interactions); use more data or another --test-ratio")
    return train, test


def split_random(data, test_ratio=0.1, seed=0):
    """Random split: `round(test_ratio * n)` interactions (seeded) go to the test set."""
    if not 0 < test_ratio < 1:
        raise UsageError(f"--test-ratio must be in (0, 1), got {test_ratio}")
    n_test = int(round(test_ratio * len(data)))
    order = np.random.default_rng(seed).permutation(len(data))
    is_test = np.zeros(len(data), bool)
    is_test[order[:n_test]] = True
    return _check_split(data.subset(~is_test), data.subset(is_test), "random")


def latest_per_user(data):
    """Boolean mask of each user's latest interaction (largest timestamp, ties: last in file order)."""
    order = np.lexsort((np.arange(len(data)), data.timestamps, data.users))
    users = data.users[order]
    last = np.ones(len(order), bool)
    last[:-1] = users[1:] != users[:-1]
    mask = np.zeros(len(data), bool)
    mask[order[last]] = True
    return mask


def split_seq_aware(data):
    """Sequence-aware split (the book's seq-aware mode): each user's latest interaction is the test item."""
    is_test = latest_per_user(data)
    return _check_split(data.subset(~is_test), data.subset(is_test), "sequence-aware")


VALIDATION_STREAM = 1


def validation_rng(seed):
    """The generator of validation draws: a `SeedSequence` child of `seed` (spawn key
    `VALIDATION_STREAM`), unrelated to the test split's stream and to `epoch_rng(seed, e)`."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(VALIDATION_STREAM,)))


def hold_out_validation(train, mode, val_ratio=0.05, seed=0):
    """Carve a validation set out of the training interactions -> (fit, validation) `Interactions`.

    mode "random": `round(val_ratio * n)` training interactions drawn by `validation_rng(seed)`.
    mode "seq-aware": each user's latest training interaction (the second-to-last overall,
    one step before the test item), except for users with a single training interaction,
    who keep it for training.
    """
    if mode == "random":
        if not 0 < val_ratio < 1:
            raise UsageError(f"--val-ratio must be in (0, 1), got {val_ratio}")
        n_val = int(round(val_ratio * len(train)))
        order = validation_rng(seed).permutation(len(train))
        is_val = np.zeros(len(train), bool)
        is_val[order[:n_val]] = True
    elif mode == "seq-aware":
        counts = np.bincount(train.users, minlength=train.num_users)
        is_val = latest_per_user(train) & (counts[train.users] > 1)
    else:
        raise UsageError(f"unknown split {mode!r}; choose random or seq-aware")
    fit, val = train.subset(~is_val), train.subset(is_val)
    for name, part in (("training", fit), ("validation", val)):
        if len(part) == 0:
            raise DatasetError(f"holding out validation data from {len(train)} training interactions of "
                               f"{train.source or 'the data'} left the {name} set empty; use more data"
                               + (" or another --val-ratio" if mode == "random" else ""))
    return fit, val


def split(data, mode, test_ratio=0.1, seed=0):
    """`split_random` for mode "random", `split_seq_aware` for "seq-aware"."""
    if mode == "random":
        return split_random(data, test_ratio, seed)
    if mode == "seq-aware":
        return split_seq_aware(data)
    raise UsageError(f"unknown split {mode!r}; choose random or seq-aware")


def load_split(data_dir=None, demo=False, mode="random", test_ratio=0.1, seed=0, dataset="ml-100k", **table):
    """MovieLens, a table or TFDS (`table`: format, columns, data_file, tfds; see `recsys.tables.load_interactions`)
    or the demo data, split by `split(data, mode, ...)` -> (train, test) `Interactions`."""
    return split(load_interactions(data_dir, demo, dataset, **table), mode, test_ratio, seed)


@dataclass
class Splits:
    """The three parts a recommender run uses (all `Interactions` over the same id spaces).

    `fit` trains the model, `val` scores it every epoch, `test` once at the end; `train`
    = fit + val is everything known before the test interactions (what the test ranking
    excludes and what a sequence model reads as history at test time).
    """

    train: Interactions
    fit: Interactions
    val: Interactions
    test: Interactions


def load_splits(data_dir=None, demo=False, mode="random", test_ratio=0.1, val_ratio=0.05, seed=0,
                dataset="ml-100k", **table):
    """`load_split`, then `hold_out_validation` of its training part -> `Splits`."""
    train, test = load_split(data_dir, demo, mode, test_ratio, seed, dataset, **table)
    fit, val = hold_out_validation(train, mode, val_ratio, seed)
    return Splits(train, fit, val, test)


def split_rows(data, ratio, seed=0):
    """Split `recsys.ctr.CTRData` rows at random -> (rest, held out), `round(ratio * rows)` held out.

    Drawn by `validation_rng(seed)`; used to carve the validation rows out of a CTR
    training file (the field vocabulary stays the training file's, so the validation rows
    only share which values are frequent, not labels).
    """
    n_out = int(round(ratio * len(data)))
    if not 1 <= n_out < len(data):
        raise DatasetError(f"{len(data)} training rows cannot give a validation set with --val-ratio {ratio}")
    order = validation_rng(seed).permutation(len(data))
    out, rest = np.sort(order[:n_out]), np.sort(order[n_out:])
    part = lambda idx: dataclasses.replace(data, features=data.features[idx], labels=data.labels[idx])  # noqa: E731
    return part(rest), part(out)
