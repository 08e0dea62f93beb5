"""A tiny ML-100K `u.data` for exact checks of the readers and splits."""


def write_udata(tmp_path, rows, info=None):
    (tmp_path / "u.data").write_text("".join("\t".join(map(str, r)) + "\n" for r in rows))
    if info:
        (tmp_path / "u.info").write_text(f"{info[0]} users\n{info[1]} items\n{len(rows)} ratings\n")
    return tmp_path


ROWS = [(1, 1, 5, 100), (1, 3, 3, 300), (2, 2, 4, 50), (1, 2, 1, 300), (3, 1, 2, 10), (2, 4, 5, 60)]


def expected_top(scores, train_set, dense_user, top):
    """File ids of the `top` items with the highest `scores` (num_items,) that `dense_user` has not rated in
    `train_set`, by an argsort (ties: the lower index), for checking a recommender's predict."""
    import numpy as np

    rated = set(train_set.items[train_set.users == dense_user].tolist())
    order = [int(i) for i in np.argsort(-np.asarray(scores), kind="stable") if int(i) not in rated]
    return train_set.file_ids("item", np.array(order[:top], int)).tolist()


def check_hr_at_k(evaluate, run_dir, num_items):
    """evaluate(run_dir, top_k=k) at growing k: HR@k and NDCG@k never decrease, HR@num_items is 1."""
    hr, ndcg = [], []
    for k in (1, 5, 10, 50, num_items):
        scores = evaluate(run_dir, top_k=k)
        hr.append(scores[f"hr_at_{k}"])
        ndcg.append(scores[f"ndcg_at_{k}"])
    assert hr == sorted(hr) and ndcg == sorted(ndcg), (hr, ndcg)
    assert hr[-1] == 1.0 and hr[0] < 1.0
    return hr
