"""Implicit feedback: which items each user interacted with, negatives sampled from the others, and
Caser's sequence windows.

`UserItemIndex` answers membership and mask queries over any number of (user, item) pairs at
once; `sample_negatives` draws unobserved items by vectorized rejection sampling;
`sequence_windows`/`latest_windows` give each interaction (or user) its previous items. No
Python loop over users or items.
"""
import numpy as np

from common.errors import DatasetError

class UserItemIndex:
    """The set of (user, item) pairs a user interacted with, for membership tests and masks.

    Stored as sorted keys `user * num_items + item` (CSR order), so `contains` is one
    `searchsorted` over any number of pairs and `mask` fills a `(batch, num_items)` matrix
    with one scatter.
    """

    def __init__(self, users, items, num_users, num_items):
        self.num_users, self.num_items = int(num_users), int(num_items)
        keys = np.unique(np.asarray(users, np.int64) * self.num_items + np.asarray(items, np.int64))
        self.keys = keys
        self.counts = np.bincount(keys // self.num_items, minlength=self.num_users)
        self.indptr = np.concatenate([[0], np.cumsum(self.counts)])

    @classmethod
    def of(cls, data):
        return cls(data.users, data.items, data.num_users, data.num_items)

    def contains(self, users, items):
        """Boolean array: has `users[j]` interacted with `items[j]` (any broadcastable shapes)."""
        keys = np.asarray(users, np.int64) * self.num_items + np.asarray(items, np.int64)
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return self.keys[pos] == keys

    def mask(self, users):
        """`(len(users), num_items)` bool matrix, True where the user interacted with the item."""
        users = np.asarray(users, np.int64)
        counts = self.counts[users]
        rows = np.repeat(np.arange(len(users)), counts)
        starts = np.repeat(self.indptr[users], counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        out = np.zeros((len(users), self.num_items), bool)
        out[rows, self.keys[starts + offsets] % self.num_items] = True
        return out


def sample_negatives(index, users, rng, num=1):
    """Items each user has not interacted with, uniformly at random: int32 `(len(users), num)`.

    Rejection sampling in rounds over all still-rejected draws at once. Raises
    `DatasetError` when some user has interacted with every item.
    """
    users = np.asarray(users, np.int64)
    full = index.counts[users] >= index.num_items
    if full.any():
        raise DatasetError(f"user {users[full][0]} interacted with every item; no negatives to sample")
    out = rng.integers(0, index.num_items, (len(users), num))
    bad = index.contains(users[:, None], out)
    while bad.any():
        out[bad] = rng.integers(0, index.num_items, int(bad.sum()))
        bad = index.contains(users[:, None], out)
    return out.astype(np.int32)


def sequence_windows(data, length, pad):
    """Caser's training examples: for every interaction, the user's `length` previous items.

    Returns (users `(n,)`, windows `(n, length)`, targets `(n,)`), windows ordered oldest to
    newest and left-padded with `pad` where a user has fewer earlier items. Interactions are
    ordered per user by timestamp (ties: file order). The first interaction of each user
    (an all-padding window) is dropped.
    """
    order = np.lexsort((np.arange(len(data)), data.timestamps, data.users))
    users, items = data.users[order], data.items[order]
    first = np.ones(len(order), bool)
    first[1:] = users[1:] != users[:-1]
    start = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
    back = np.arange(len(order))[:, None] - np.arange(length, 0, -1)[None, :]
    valid = back >= start[:, None]
    windows = np.where(valid, items[np.clip(back, 0, None)], pad).astype(np.int32)
    keep = ~first
    return users[keep], windows[keep], items[keep]


def latest_windows(data, users, length, pad):
    """Each given user's last `length` items in `data` (oldest first, left-padded): `(len(users), length)`."""
    order = np.lexsort((np.arange(len(data)), data.timestamps, data.users))
    sorted_users, items = data.users[order], data.items[order]
    end = np.searchsorted(sorted_users, users, side="right")
    begin = np.searchsorted(sorted_users, users, side="left")
    idx = end[:, None] - np.arange(length, 0, -1)[None, :]
    valid = idx >= begin[:, None]
    return np.where(valid, items[np.clip(idx, 0, None)], pad).astype(np.int32)
