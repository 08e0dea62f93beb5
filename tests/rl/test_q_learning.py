import json

import numpy as np
import pytest

from rl import mdp
from rl.q_learning import BOOK, Config, main, q_learning
from rl.value_iteration import main as value_iteration_main, value_iteration


def learn(config):
    env = mdp.make_env(config)
    model = mdp.from_env(env)
    q, returns, lengths, steps = q_learning(env, model.n_states, model.n_actions, config.gamma, config.alpha,
                                            config.epsilon, config.episodes, config.seed, config.alpha_power)
    return env, model, q, returns, lengths, steps


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_alpha_one_on_a_deterministic_mdp_reaches_q_star_exactly():
    # With alpha = 1 every update is an exact Bellman backup of one (s, a): asynchronous value
    # iteration. Under uniformly random behaviour every pair is backed up often enough.
    config = Config(alpha=1.0, epsilon=1.0, episodes=3000, gamma=0.9)
    _, model, q, _, lengths, steps = learn(config)
    optimum = value_iteration(model, config.gamma, tol=0, max_sweeps=50).q_values
    np.testing.assert_allclose(q, optimum, atol=1e-12)
    assert steps == lengths.sum() > 3000


def test_single_update_by_hand():
    # 1x2 map "SG": every action from S either stays (wall) or reaches G with reward 1.
    config = Config(map="SG,FF", alpha=0.5, epsilon=1.0, episodes=1, gamma=0.9, seed=3)
    env, _, q, returns, lengths, _ = learn(config)
    # Replay the episode: same seeds, same draws; apply the update rule by hand.
    rng = np.random.default_rng(3)
    rng.random(4096)  # the explore-or-not draws: all below epsilon = 1
    actions = rng.integers(4, size=4096)
    expected = np.zeros((4, 4))
    state, _ = env.reset(seed=3)
    for t in range(lengths[0]):
        next_state, reward, terminated, _, _ = env.step(int(actions[t]))
        target = reward + (0 if terminated else 0.9 * expected[next_state].max())
        expected[state, actions[t]] += 0.5 * (target - expected[state, actions[t]])
        state = next_state
    np.testing.assert_allclose(q, expected, atol=1e-15)
    assert returns[0] == 1.0 and q[0, 2] == 0.5  # moving right from S reaches G once


def test_slippery_4x4_matches_value_iteration_success_rate():
    config = Config(slippery=True, alpha=1.0, alpha_power=0.8, episodes=10000)
    env, model, q, *_ = learn(config)
    optimum = value_iteration(model, config.gamma)
    seed = mdp.EVAL_SEED
    learned = mdp.policy_metrics(env, q.argmax(axis=1), 1000, seed)["success_rate"]
    best = mdp.policy_metrics(env, optimum.policy, 1000, seed)["success_rate"]
    assert best > 0.65 and abs(learned - best) <= 0.05, (learned, best)


def test_constant_alpha_book_defaults_solve_deterministic_8x8(capsys):
    # The book's defaults (gamma 0.95, alpha 0.9, epsilon 0.9) with enough episodes to find the goal.
    assert main(["--map", "8x8", "--episodes", "6000", "--eval-episodes", "20"]) == 0
    metrics = last_json(capsys)
    assert metrics["success_rate"] == 1.0 and metrics["mean_length"] == 14.0


@pytest.mark.parametrize("seed", [0, 6])
def test_the_default_1000_episodes_solve_deterministic_4x4_where_the_books_256_miss(seed):
    # 256 episodes (the book's count) find the goal often enough for 7 of seeds 0..9; these two are misses.
    config = Config(seed=seed)
    assert (config.alpha, config.epsilon, config.episodes, config.alpha_power) == (0.9, 0.9, 1000, 0.0)
    env, _, q, *_ = learn(config)
    assert mdp.policy_metrics(env, q.argmax(axis=1), 10, 0)["success_rate"] == 1.0
    _, _, q_short, *_ = learn(Config(seed=seed, **BOOK))
    assert mdp.policy_metrics(env, q_short.argmax(axis=1), 10, 0)["success_rate"] == 0.0


def test_slippery_maps_default_to_the_decaying_learning_rate_and_explicit_flags_win():
    assert (Config(slippery=True).alpha, Config(slippery=True).alpha_power, Config(slippery=True).episodes) == \
        (1.0, 0.8, 50_000)
    assert Config(slippery=True, alpha=0.9).alpha == 0.9 and Config(slippery=True, alpha=0.9).alpha_power == 0.8
    assert Config(slippery=True, alpha_power=0.0).alpha_power == 0.0


def _default_matches_value_iteration(capsys, tmp_path, map_name):
    """`python -m rl.q_learning --map M --slippery` with no other flag against `python -m rl.value_iteration`."""
    assert value_iteration_main(["--map", map_name, "--slippery", "--run-dir", str(tmp_path / "vi")]) == 0
    best = last_json(capsys)["success_rate"]
    assert main(["--map", map_name, "--slippery", "--run-dir", str(tmp_path / "q")]) == 0
    learned = last_json(capsys)
    config = json.loads((tmp_path / "q" / "config.json").read_text())
    assert (config["alpha"], config["alpha_power"], config["episodes"]) == (1.0, 0.8, 50_000)
    assert best > 0.65 and abs(learned["success_rate"] - best) <= 0.05, (learned, best)
    assert learned["episodes"] == 1000  # the same 1000 evaluation episodes as value iteration's


def test_slippery_4x4_default_reaches_value_iterations_success_rate(capsys, tmp_path):
    # measured: 0.715 against value iteration's 0.715 (the book's settings: 0.065)
    _default_matches_value_iteration(capsys, tmp_path, "4x4")


@pytest.mark.slow
def test_slippery_8x8_default_reaches_value_iterations_success_rate(capsys, tmp_path):
    # measured: 0.711 against value iteration's 0.728
    _default_matches_value_iteration(capsys, tmp_path, "8x8")


def test_preset_book_keeps_the_books_settings_on_a_slippery_map(capsys, tmp_path):
    assert main(["--slippery", "--preset", "book", "--eval-episodes", "200", "--run-dir", "book"]) == 0
    metrics = last_json(capsys)
    config = json.loads((tmp_path / "book" / "config.json").read_text())
    assert {k: config[k] for k in BOOK} == BOOK == {"alpha": 0.9, "epsilon": 0.9, "episodes": 256, "alpha_power": 0.0}
    assert metrics["success_rate"] < 0.3  # constant alpha never settles on slippery ice (0.065 on 1000 episodes)


def test_python_api_trains_and_evaluates_without_load(tmp_path):
    import rl.q_learning as module

    result = module.train(Config(episodes=1000, eval_episodes=20), run_dir=str(tmp_path / "api"))
    assert result["success_rate"] == 1.0 and result["run_dir"] == str(tmp_path / "api")
    assert module.evaluate(str(tmp_path / "api"), evaluate_episodes=5)["episodes"] == 5
    assert not hasattr(module, "load")


def test_too_few_episodes_fail_deterministic_8x8():
    _, _, q, returns, *_ = learn(Config(map="8x8", episodes=200))
    env = mdp.make_env(Config(map="8x8"))
    assert mdp.policy_metrics(env, q.argmax(axis=1), 5, 0)["success_rate"] == 0.0


def test_cli_defaults_files_and_evaluate(capsys, tmp_path):
    assert main(["train", "--run-dir", "q", "--eval-episodes", "50"]) == 0
    metrics = last_json(capsys)
    config = json.loads((tmp_path / "q" / "config.json").read_text())
    assert (config["gamma"], config["alpha"], config["epsilon"], config["episodes"]) == (0.95, 0.9, 0.9, 1000)
    assert metrics["episodes"] == 50 and metrics["success_rate"] == 1.0 and metrics["env_steps"] > 1000
    for name in ("value_policy.png", "curves.png", "lengths.png", "q_table.npz", "metrics.json"):
        assert (tmp_path / "q" / name).stat().st_size > 0
    assert main(["evaluate", "--run-dir", "q", "--episodes", "50"]) == 0
    assert last_json(capsys)["success_rate"] == metrics["success_rate"]
    # without --episodes, evaluate plays the run's --eval-episodes (the training --episodes is another setting)
    assert main(["evaluate", "--run-dir", "q"]) == 0
    assert last_json(capsys) == {k: metrics[k] for k in ("success_rate", "mean_return", "mean_length", "episodes")}
    assert main(["evaluate", "--run-dir", "q", "--episodes", "7"]) == 0
    assert last_json(capsys)["episodes"] == 7
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--run-dir", "q", "--episodes", "0"])
    assert exit_info.value.code == 2 and "--episodes: must be at least 1, got 0" in capsys.readouterr().err


@pytest.mark.parametrize("argv,code,message", [
    (["--alpha", "0"], 2, "--alpha must be in (0, 1], got 0.0"),
    (["--epsilon", "1.5"], 2, "--epsilon must be in [0, 1]"),
    (["--gamma", "2"], 2, "--gamma must be in [0, 1], got 2.0"),
    (["--episodes", "0"], 2, "--episodes must be at least 1"),
    (["--map", "9x9"], 2, "unknown map '9x9'"),
    (["--env", "CartPole-v1"], 1, "CartPole-v1 has no transition table"),
    (["evaluate"], 2, "no run found under runs/q_learning"),
])
def test_bad_input_one_line(argv, code, message, capsys):
    assert main(argv) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
