import itertools
import json

import numpy as np
import pytest

from rl import mdp
from rl.value_iteration import main, policy_evaluation, q_from_values, value_iteration


def solve(map_name="4x4", slippery=False, gamma=0.95, **kw):
    model = mdp.from_env(mdp.make_env(mdp.TabularConfig(map=map_name, slippery=slippery)))
    return model, value_iteration(model, gamma, **kw)


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize("map_name,slippery,gamma", [("4x4", False, 0.95), ("4x4", True, 0.95),
                                                     ("8x8", True, 0.99), ("random-16", True, 0.9)])
def test_values_equal_exact_evaluation_of_greedy_policy(map_name, slippery, gamma):
    model, result = solve(map_name, slippery, gamma)
    exact = policy_evaluation(model, result.policy, gamma)
    np.testing.assert_allclose(result.values, exact, atol=1e-6, rtol=0)
    # Bellman optimality: V = max_a Q(V), and terminal states are worth 0.
    np.testing.assert_allclose(q_from_values(model, result.values, gamma).max(axis=1), result.values, atol=1e-9)
    assert np.all(result.values[model.terminal] == 0)


def test_deterministic_values_by_hand():
    # Shortest path from S to G on 4x4 takes 6 moves, the reward 1 comes on the 6th: V(S) = gamma^5.
    model, result = solve(gamma=0.9)
    assert result.values[0] == pytest.approx(0.9 ** 5, abs=1e-12)
    assert result.values[14] == pytest.approx(1.0) and result.values[10] == pytest.approx(0.9)
    # Value iteration from V = 0 is a k-step lookahead: the start sees the goal only after 6 sweeps.
    five = value_iteration(model, 0.9, tol=0, max_sweeps=5)
    six = value_iteration(model, 0.9, tol=0, max_sweeps=6)
    assert five.values[0] == 0 and six.values[0] == pytest.approx(0.9 ** 5)
    assert five.q_values[0].max() == pytest.approx(0.9 ** 5)  # Q looks one step further than V
    assert value_iteration(model, 0.9, tol=0, max_sweeps=5).sweeps == 5


def test_matches_brute_force_over_all_policies():
    # 2x3 map with 4 non-terminal states: 4^4 deterministic policies, each evaluated exactly.
    model = mdp.from_env(mdp.make_env(mdp.TabularConfig(map="SFF,FHG", slippery=True)))
    gamma = 0.9
    result = value_iteration(model, gamma)
    movable = np.flatnonzero(~model.terminal)
    best = np.full(model.n_states, -np.inf)
    for actions in itertools.product(range(4), repeat=len(movable)):
        policy = np.zeros(model.n_states, int)
        policy[movable] = actions
        best = np.maximum(best, policy_evaluation(model, policy, gamma))
    np.testing.assert_allclose(result.values, best, atol=1e-9)


def test_stops_on_tolerance_and_residuals_shrink():
    _, loose = solve(slippery=True, tol=1e-3)
    _, tight = solve(slippery=True, tol=1e-10)
    assert loose.sweeps < tight.sweeps and tight.residuals[-1] <= 1e-10 < tight.residuals[-2]
    assert np.all(np.diff(tight.residuals[5:]) <= 1e-15)


def test_cli_deterministic_policy_succeeds_every_episode(capsys, tmp_path):
    assert main(["--eval-episodes", "50"]) == 0  # no sub-command: train into runs/value_iteration/<time>
    metrics = last_json(capsys)
    assert metrics["success_rate"] == 1.0 and metrics["episodes"] == 50 and metrics["mean_length"] == 6.0
    assert metrics["policy_eval_error"] < 1e-6
    for name in ("value_policy.png", "residuals.png", "solution.npz", "config.json", "metrics.json"):
        assert next((tmp_path / "runs" / "value_iteration").glob(f"*/{name}")).stat().st_size > 0
    assert main(["evaluate", "--episodes", "20"]) == 0  # newest run
    assert last_json(capsys)["success_rate"] == 1.0


def test_cli_slippery_8x8_evaluate_reproduces(capsys):
    assert main(["train", "--map", "8x8", "--slippery", "--gamma", "0.99", "--eval-episodes", "200",
                 "--run-dir", "vi8"]) == 0
    trained = last_json(capsys)
    assert 0.5 < trained["success_rate"] < 1.0 and trained["policy_eval_error"] < 1e-6
    assert main(["evaluate", "--run-dir", "vi8"]) == 0
    assert last_json(capsys)["success_rate"] == trained["success_rate"]


@pytest.mark.parametrize("argv,code,message", [
    (["--env", "CartPole-v1"], 1, "CartPole-v1 has no transition table"),
    (["--map", "5x5"], 2, "unknown map '5x5'"),
    (["--gamma", "1.5"], 2, "--gamma must be in [0, 1], got 1.5"),
    (["--gamma", "-0.1"], 2, "--gamma must be in [0, 1]"),
    (["--env", "NoSuchEnv-v0"], 2, "--env 'NoSuchEnv-v0'"),
    (["evaluate", "--run-dir", "missing"], 2, "missing is not a run directory"),
])
def test_bad_input_one_line(argv, code, message, capsys):
    assert main(argv) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
