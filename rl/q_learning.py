"""Tabular Q-learning with an epsilon-greedy behaviour policy (D2L 17.3), FrozenLake by default.

    python -m rl.q_learning [--map 4x4] [--slippery] [--gamma 0.95 --alpha 0.9 --epsilon 0.9 --episodes 256]
    python -m rl.q_learning evaluate [--run-dir DIR] [--episodes N]

Defaults are the book's (gamma 0.95, learning rate alpha 0.9, exploration epsilon 0.9,
256 episodes; the book's `num_iters`). The update is
Q[s, a] += alpha * (r + gamma * (1 - terminated) * max_a' Q[s', a'] - Q[s, a]); a
time-limit truncation still bootstraps. The first form (the same as `train`) learns Q,
scores the greedy policy on the real environment, and writes `q_table.npz`,
`value_policy.png` (max_a Q as a heat map, the greedy policy as arrows), `curves.png`
(training return per episode) and `lengths.png` (episode length). The last line of
stdout is JSON with `success_rate`. `--alpha-power` (not in the book) decays the
learning rate per state-action pair, which slippery (stochastic) maps need to converge.
"""
import sys
from dataclasses import dataclass, field

import numpy as np

from common import cli
from common.data import epoch_seed
from common.files import atomic_path
from rl import mdp


@dataclass
class Config(mdp.TabularConfig):
    alpha: float = field(default=0.9, metadata=cli.bounds("(0, 1]", "learning rate"))
    epsilon: float = field(default=0.9, metadata=cli.bounds("[0, 1]", "probability of a uniformly random action"))
    episodes: int = field(default=256, metadata=cli.at_least(1, "training episodes"))
    alpha_power: float = field(default=0.0, metadata=cli.bounds(
        "[0, 1]", "the n-th update of Q[s, a] uses alpha / n**alpha_power: 0 keeps alpha constant (the book), "
                  "a power in (0.5, 1] makes Q converge on stochastic environments"))


DEMO = {"episodes": 2000, "eval_episodes": 200}


def q_learning(env, n_states, n_actions, gamma, alpha, epsilon, episodes, seed, alpha_power=0.0):
    """Learn a (S, A) action-value table from `episodes` epsilon-greedy episodes of `env`.

    The n-th update of Q[s, a] has learning rate alpha / n**alpha_power (constant alpha
    for power 0; a power in (0.5, 1] satisfies the Robbins-Monro conditions).

    Episode i resets with `epoch_seed(seed, i)`; exploration draws come from a NumPy generator seeded
    with `seed`, drawn in blocks; greedy choices break ties by the lowest action (as
    np.argmax). The table is kept as Python lists while learning: indexing and max() of a
    short list cost a tenth of NumPy's per-call overhead, and the loop is one update per
    environment step. Returns (Q (S, A), returns (episodes,), lengths (episodes,), env_steps).
    """
    rng = np.random.default_rng(seed)
    q = [[0.0] * n_actions for _ in range(n_states)]
    visits = [[0] * n_actions for _ in range(n_states)]
    returns, lengths = np.zeros(episodes), np.zeros(episodes, int)
    draws = _RandomBlocks(rng, n_actions)
    for i in range(episodes):
        state, _ = env.reset(seed=epoch_seed(seed, i))
        done = False
        while not done:
            explore, random_action = draws.next()
            row = q[state]
            action = random_action if explore < epsilon else row.index(max(row))
            next_state, reward, terminated, truncated, _ = env.step(action)
            target = reward + (0.0 if terminated else gamma * max(q[next_state]))
            visits[state][action] += 1
            rate = alpha / visits[state][action] ** alpha_power if alpha_power else alpha
            row[action] += rate * (target - row[action])
            state = next_state
            returns[i] += reward
            lengths[i] += 1
            done = terminated or truncated
    return np.array(q), returns, lengths, int(lengths.sum())


class _RandomBlocks:
    """(uniform in [0, 1), uniform action) pairs drawn from `rng` 4096 at a time."""

    def __init__(self, rng, n_actions, block=4096):
        self.rng, self.n_actions, self.block = rng, n_actions, block
        self.i = block

    def next(self):
        if self.i == self.block:
            self.uniform = self.rng.random(self.block).tolist()
            self.actions = self.rng.integers(self.n_actions, size=self.block).tolist()
            self.i = 0
        self.i += 1
        return self.uniform[self.i - 1], self.actions[self.i - 1]


def train(ctx):
    """Learn Q on the environment, then score and plot its greedy policy."""
    from rl.plots import curve, value_policy_map  # matplotlib: loaded when a run draws, not for --help

    config = ctx.config
    env = mdp.make_env(config)
    model = mdp.from_env(env)
    q, returns, lengths, steps = q_learning(env, model.n_states, model.n_actions, config.gamma, config.alpha,
                                            config.epsilon, config.episodes, config.seed, config.alpha_power)
    run = ctx.run()
    policy = q.argmax(axis=1)
    with atomic_path(run.file("q_table.npz")) as tmp:
        np.savez(tmp, q_values=q, policy=policy, returns=returns, lengths=lengths)
    if model.desc is not None:
        value_policy_map(q.max(axis=1), policy, model.desc, run.file("value_policy.png"),
                         title=f"Q-learning, {config.map}{' slippery' if config.slippery else ''}, "
                               f"{config.episodes} episodes")
    smooth = max(1, config.episodes // 50)
    curve(returns, run.file("curves.png"), "episode", "return", title="Q-learning training returns", smooth=smooth)
    curve(lengths, run.file("lengths.png"), "episode", "length", title="episode length", smooth=smooth)
    metrics = mdp.policy_metrics(env, policy, config.eval_episodes, mdp.EVAL_SEED + config.seed)
    metrics.update(env_steps=steps, train_success_rate=float(np.mean(returns > 0)))
    run.write_json("metrics.json", metrics)
    return metrics


def evaluate(ctx):
    """Success rate of the run's saved greedy policy over seeded episodes."""
    return mdp.evaluate_saved_policy(ctx, "q_table.npz")


COMMANDS = {
    "train": cli.Command(train, "learn Q by Q-learning and score its greedy policy (the default)",
                         configurable=True, reads_data=False),
    "evaluate": cli.Command(evaluate, "success rate of a saved greedy policy", add_arguments=mdp.evaluate_arguments,
                             reads_data=False),
}


def main(argv=None):
    return cli.main("Tabular Q-learning on FrozenLake (or any tabular gymnasium env)",
                    Config, COMMANDS, demo=DEMO, argv=mdp.default_command(argv, COMMANDS))


if __name__ == "__main__":
    sys.exit(main())
