"""Recsys metrics: the batched ranking AUC of recsys.metrics against a per-user sklearn loop.

`recsys.metrics.ranking_metrics` ranks every user's held-out item against all the user's
unobserved items for a whole `(users, items)` score matrix at once; the alternative is one
`sklearn.metrics.roc_auc_score` call per user over that user's candidates. Both are timed on
a MovieLens-100K-sized matrix (943 users x 1,682 items, ~6% of it observed) and checked to
agree. `python -m benchmarks.recsys_metrics`; one JSON line per measurement (benchmarks.harness).
"""
import numpy as np
from sklearn.metrics import roc_auc_score

from benchmarks.harness import measure
from recsys.metrics import ranking_metrics


def per_user_sklearn_auc(scores, test_items, exclude):
    """Mean AUC with one roc_auc_score call per user (the test item is the one positive)."""
    aucs = []
    for u in range(len(scores)):
        keep = ~exclude[u]
        keep[test_items[u]] = True
        labels = np.zeros(scores.shape[1], bool)
        labels[test_items[u]] = True
        aucs.append(roc_auc_score(labels[keep], scores[u, keep]))
    return float(np.mean(aucs))


def main():
    rng = np.random.default_rng(0)
    users, items = 943, 1682
    scores = rng.normal(size=(users, items)).astype(np.float32)
    test_items = rng.integers(0, items, users)
    exclude = rng.random((users, items)) < 0.06
    ours = float(np.mean(ranking_metrics(scores, test_items, exclude)["auc"]))
    reference = per_user_sklearn_auc(scores, test_items, exclude)
    assert abs(ours - reference) < 1e-9, (ours, reference)
    size = {"users": users, "items": items}
    fast = measure("recsys.metrics.ranking_metrics (batched)",
                   lambda: ranking_metrics(scores, test_items, exclude), users, "users", **size)
    slow = measure("sklearn roc_auc_score per user", lambda: per_user_sklearn_auc(scores, test_items, exclude),
                   users, "users", repeat=1, **size)
    print(f'{{"what": "speed-up of the batched ranking AUC", "ratio": {fast["rate"] / slow["rate"]:.1f}}}')


if __name__ == "__main__":
    main()
