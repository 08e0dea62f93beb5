"""recsys.ranking: the ranking protocols on a hand-scored example, the pairwise triples, the shared flags."""
import argparse
import math

import numpy as np
import pytest

from recsys.implicit import UserItemIndex
from recsys.losses import LOSSES
from recsys.movielens import Interactions
from recsys.ranking import PROTOCOLS, RankingConfig, pairwise_dataset, protocol_arguments, ranking_report


def interactions(pairs, num_users=2, num_items=5):
    users, items = (np.array(column, np.int32) for column in zip(*pairs))
    return Interactions(users, items, np.ones(len(pairs), np.float32), np.arange(len(pairs), dtype=np.int64),
                        num_users, num_items)


# user 0 knows item 0 and holds out items 2 and 3 (the first listed, 2, is ranked); user 1 knows 1 and 3,
# holds out 4
KNOWN = interactions([(0, 0), (1, 1), (1, 3)])
HELDOUT = interactions([(0, 2), (0, 3), (1, 4)])
SCORES = np.array([[9.0, 5.0, 3.0, 4.0, 1.0],
                   [0.0, 7.0, 2.0, 9.0, 6.0]])


def score_fn(users):
    return SCORES[np.asarray(users)]


def test_full_protocol_ranks_the_first_heldout_item_against_every_unknown_item():
    # user 0: candidates 1 (5), 2 (3), 3 (4), 4 (1): item 2 is third -> no hit at k=2, NDCG 0, AUC 1/3
    # (it beats item 4 only); user 1: candidates 0 (0), 2 (2), 4 (6): item 4 is first -> hit, NDCG
    # 1/log2(2) = 1, AUC 2/2
    got = ranking_report(score_fn, KNOWN, HELDOUT, k=2)
    assert got == pytest.approx({"hr_at_2": 0.5, "ndcg_at_2": 0.5, "auc": (1 / 3 + 1) / 2, "users": 2})
    # at k=3 user 0's third place is a hit: NDCG 1/log2(4) = 0.5
    got = ranking_report(score_fn, KNOWN, HELDOUT, k=3)
    assert got == pytest.approx({"hr_at_3": 1.0, "ndcg_at_3": (0.5 + 1) / 2, "auc": (1 / 3 + 1) / 2, "users": 2})


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_sampled_protocol_never_draws_a_heldout_item_as_a_negative(seed):
    # two negatives a user, from the items they never interacted with, held-out ones included: user 0's
    # are exactly items 1 and 4 (not 3, held out), user 1's items 0 and 2, whatever the seed.
    # user 0: 2 (3) against 1 (5) and 4 (1): second -> hit, NDCG 1/log2(3), AUC 1/2; user 1: first of 3
    got = ranking_report(score_fn, KNOWN, HELDOUT, k=2, negatives=2, seed=seed)
    assert got == pytest.approx({"hr_at_2": 1.0, "ndcg_at_2": (1 / math.log2(3) + 1) / 2, "auc": (0.5 + 1) / 2,
                                 "users": 2})


def test_pairwise_triples_pair_each_positive_with_an_item_its_user_never_had():
    # user 0 had items 0 and 1, user 1 items 1 and 2 (of 3): the only negatives are 2 and 0
    users, items = np.array([0, 0, 1, 1], np.int32), np.array([0, 1, 1, 2], np.int32)
    index = UserItemIndex(users, items, 2, 3)
    context = users * 10  # any array indexed like the positives
    triples = []
    for ctx, pos, neg in pairwise_dataset(context, users, items, index, batch_size=3, seed=0, epoch=0):
        assert len(pos) in (3, 1)
        triples += zip(np.asarray(ctx).tolist(), np.asarray(pos).tolist(), np.asarray(neg).tolist())
    assert sorted(triples) == [(0, 0, 2), (0, 1, 2), (10, 1, 0), (10, 2, 0)]
    again = [np.asarray(p).tolist() for _, p, _ in pairwise_dataset(context, users, items, index, 3, 0, 0)]
    assert again == [np.asarray(p).tolist() for _, p, _ in pairwise_dataset(context, users, items, index, 3, 0, 0)]


def test_ranking_config_and_the_evaluate_flags():
    assert RankingConfig().sampled_negatives() is None
    assert RankingConfig(protocol="sampled", negatives=50).sampled_negatives() == 50
    loss = next(f for f in RankingConfig.__dataclass_fields__.values() if f.name == "loss")
    assert loss.metadata["choices"] == sorted(LOSSES) == ["bpr", "hinge"]
    parser = argparse.ArgumentParser()
    protocol_arguments(parser)
    assert vars(parser.parse_args([])) == {}  # absent flags keep the run's saved values
    assert vars(parser.parse_args(["--protocol", "sampled", "--negatives", "20"])) == {
        "protocol": "sampled", "negatives": 20}
    assert PROTOCOLS == ("full", "sampled")
    with pytest.raises(SystemExit):
        parser.parse_args(["--negatives", "0"])
