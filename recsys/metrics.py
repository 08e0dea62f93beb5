"""Ranking metrics of implicit-feedback recommenders: HR@k, NDCG@k and AUC.

Two protocols rank each user's held-out item: "full" (against every item the user has not
interacted with) and "sampled" (the NCF paper's: against `negatives`, e.g. 100, items drawn
at random, seeded, among those the user has not interacted with).

RMSE, the CTR AUC and the log loss come from `sklearn.metrics` (`root_mean_squared_error`,
`roc_auc_score`, `log_loss`). The ranking metrics stay here: they score a whole batch of
users at once, 327x faster than one `roc_auc_score` call per user with the same result
(benchmarks/recsys_metrics.py). They take a `(users, items)` score matrix, each user's
held-out item and a mask of the items to leave out (those the user interacted with in
training). The held-out item is ranked against every other item that is not masked. Ties
count against the held-out item for HR/NDCG (a constant scorer gets HR 0, not 1) and as one
half for AUC.
"""
import numpy as np

from common.errors import DatasetError


def rank_of_test_items(scores, test_items, exclude):
    """Per-user rank statistics of the test item among the user's candidate items.

    scores: `(users, items)` float; test_items: `(users,)` int; exclude: `(users, items)` bool
    (True = not a candidate; the test item itself is always kept). Returns
    (`higher`, `ties`, `candidates`): how many other candidates score above / equal to the
    test item, and how many other candidates there are, each int64 `(users,)`.
    """
    scores = np.asarray(scores)
    rows = np.arange(len(scores))
    test_items = np.asarray(test_items)
    target = scores[rows, test_items][:, None]
    other = ~np.asarray(exclude, bool)
    other[rows, test_items] = False
    higher = np.sum((scores > target) & other, axis=1)
    ties = np.sum((scores == target) & other, axis=1)
    return higher, ties, other.sum(axis=1)


def ranking_metrics(scores, test_items, exclude, k=10):
    """Per-user `hit` (HR@k), `ndcg` (NDCG@k) and `auc` for one batch, each float64 `(users,)`.

    Rank r (0-based) = candidates scoring above the test item plus ties; hit = r < k,
    ndcg = 1 / log2(r + 2) if r < k else 0 (one relevant item, so the ideal DCG is 1),
    auc = (candidates below + ties / 2) / candidates.
    """
    higher, ties, candidates = rank_of_test_items(scores, test_items, exclude)
    rank = higher + ties
    hit = (rank < k).astype(np.float64)
    ndcg = hit / np.log2(rank + 2.0)
    below = candidates - higher - ties
    auc = (below + 0.5 * ties) / np.maximum(candidates, 1)
    return {"hit": hit, "ndcg": ndcg, "auc": auc}


SAMPLED_STREAM = 2


def sampled_rng(seed):
    """The generator of the sampled protocol's negatives: a `SeedSequence` child of `seed` (spawn key
    `SAMPLED_STREAM`), apart from the split's, the validation's and the epochs' streams."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(SAMPLED_STREAM,)))


def sample_candidates(exclude, test_items, negatives, rng):
    """`negatives` distinct items per user, uniformly among those not excluded and not the test item.

    exclude: `(users, items)` bool (the items each user interacted with); test_items: `(users,)`.
    Returns int64 `(users, negatives)`, drawn as the `negatives` smallest of uniform keys (a
    uniform subset without replacement, all users at once). Raises `DatasetError` when a user has
    fewer candidates than `negatives`.
    """
    exclude = np.array(exclude, bool)
    rows = np.arange(len(exclude))
    exclude[rows, test_items] = True
    short = (~exclude).sum(axis=1) < negatives
    if short.any():
        raise DatasetError(f"a user has only {int((~exclude[short][0]).sum())} items to sample {negatives} "
                         "negatives from; lower --negatives")
    keys = rng.random(exclude.shape)
    keys[exclude] = 2.0
    return np.argpartition(keys, negatives - 1, axis=1)[:, :negatives]


def evaluate_ranking(score_fn, users, test_items, index, k=10, batch_users=256, negatives=None, seed=0):
    """Mean HR@k, NDCG@k and AUC over all `users`, scoring `batch_users` users at a time.

    score_fn: `users (B,) -> scores (B, num_items)`; index: a `recsys.implicit.UserItemIndex` of
    the training interactions (their items are never candidates). `negatives=None`: the full
    protocol (the test item against every other item); an int: the sampled protocol (the test
    item against that many items drawn by `sample_candidates` from `sampled_rng(seed)`, batch by
    batch, so the draws are fixed by `seed` and `batch_users`). Returns
    {"hr_at_<k>", "ndcg_at_<k>", "auc", "users"}.
    """
    users = np.asarray(users)
    test_items = np.asarray(test_items)
    rng = sampled_rng(seed) if negatives else None
    parts = {"hit": [], "ndcg": [], "auc": []}
    for start in range(0, len(users), batch_users):
        batch = users[start:start + batch_users]
        scores, tests, exclude = np.asarray(score_fn(batch)), test_items[start:start + batch_users], index.mask(batch)
        if negatives:
            candidates = np.concatenate([tests[:, None], sample_candidates(exclude, tests, negatives, rng)], axis=1)
            scores = np.take_along_axis(scores, candidates, axis=1)
            tests, exclude = np.zeros(len(batch), np.int64), np.zeros(scores.shape, bool)
        result = ranking_metrics(scores, tests, exclude, k)
        for key, value in result.items():
            parts[key].append(value)
    mean = {key: float(np.mean(np.concatenate(v))) for key, v in parts.items()}
    return {f"hr_at_{k}": mean["hit"], f"ndcg_at_{k}": mean["ndcg"], "auc": mean["auc"], "users": int(len(users))}
