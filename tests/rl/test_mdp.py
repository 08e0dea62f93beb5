import gymnasium as gym
import numpy as np
import pytest

from common.errors import DlsuiteError, UsageError
from rl import mdp


def frozen_lake(map_name="4x4", slippery=False, **kw):
    return mdp.make_env(mdp.TabularConfig(map=map_name, slippery=slippery, **kw))


def test_dense_arrays_match_gymnasium_transition_table():
    env = frozen_lake(slippery=True)
    model = mdp.from_env(env)
    assert model.P.shape == (16, 4, 16) and model.R.shape == (16, 4)
    np.testing.assert_allclose(model.P.sum(axis=2), 1.0, atol=1e-12)
    table = env.unwrapped.P
    for s in range(16):
        for a in range(4):
            expected = np.zeros(16)
            for p, s2, _, _ in table[s][a]:
                expected[s2] += p
            np.testing.assert_allclose(model.P[s, a], expected, atol=1e-12)
            assert model.R[s, a] == pytest.approx(sum(p * r for p, _, r, _ in table[s][a]))
    # From 14 (left of the goal) moving right: slips up/down w.p. 1/3 each, reaches the goal w.p. 1/3.
    assert model.P[14, 2, 15] == pytest.approx(1 / 3) and model.R[14, 2] == pytest.approx(1 / 3)
    holes_and_goal = [i for i, c in enumerate("".join(model.desc)) if c in "HG"]
    assert np.flatnonzero(model.terminal).tolist() == holes_and_goal == [5, 7, 11, 12, 15]


def test_deterministic_moves_by_hand():
    model = mdp.from_env(frozen_lake())
    assert model.P[0, 2, 1] == 1.0  # right
    assert model.P[0, 1, 4] == 1.0  # down
    assert model.P[0, 0, 0] == 1.0 and model.P[0, 3, 0] == 1.0  # left and up hit the wall
    assert model.R[14, 2] == 1.0 and model.R[14, 1] == 0.0


def test_maps_8x8_random_and_custom():
    assert mdp.from_env(frozen_lake("8x8")).P.shape == (64, 4, 64)
    rows = mdp.frozen_lake_map("random-12", seed=3)
    assert len(rows) == 12 and all(len(r) == 12 for r in rows) and rows == mdp.frozen_lake_map("random-12", seed=3)
    model = mdp.from_env(frozen_lake("SFH,FFG"))
    assert model.desc == ("SFH", "FFG") and model.terminal.tolist() == [False, False, True, False, False, True]
    assert frozen_lake("8x8").spec.max_episode_steps == 200 and frozen_lake().spec.max_episode_steps == 100


@pytest.mark.parametrize("name", ["5x5", "random-x", "SFFX,FFFG", "SFF,FG", "FFF,FFG"])
def test_unknown_map_is_a_usage_error(name):
    with pytest.raises(UsageError, match="unknown map"):
        mdp.frozen_lake_map(name)


def test_other_tabular_env_and_env_without_table():
    taxi = mdp.from_env(gym.make("Taxi-v4"))
    assert taxi.P.shape == (500, 6, 500)
    np.testing.assert_allclose(taxi.P.sum(axis=2), 1.0)
    with pytest.raises(DlsuiteError, match="CartPole-v1 has no transition table"):
        mdp.from_env(gym.make("CartPole-v1"))


def test_rollout_of_a_known_policy():
    env = frozen_lake()
    # down, down, right, right, down, right: 0 -> 4 -> 8 -> 9 -> 10 -> 14 -> 15
    policy = np.zeros(16, int)
    policy[[0, 4]] = 1
    policy[[8, 9]] = 2
    policy[10] = 1
    policy[14] = 2
    metrics = mdp.policy_metrics(env, policy, episodes=5, seed=0)
    assert metrics["success_rate"] == 1.0 and metrics["mean_length"] == 6.0
    always_left = mdp.policy_metrics(env, np.zeros(16, int), episodes=3, seed=0)
    assert always_left["success_rate"] == 0.0 and always_left["mean_length"] == 100.0


def test_sparse_successors_rebuild_dense_p():
    model = mdp.from_env(frozen_lake("random-10", slippery=True))
    next_states, probs = model.successors
    assert next_states.shape == probs.shape == (100, 4, 3)
    rebuilt = np.zeros_like(model.P)
    np.add.at(rebuilt, (np.arange(100)[:, None, None], np.arange(4)[None, :, None], next_states), probs)
    np.testing.assert_array_equal(rebuilt, model.P)
