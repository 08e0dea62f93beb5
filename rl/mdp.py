"""Markov decision processes read from gymnasium's tabular environments.

`from_env` turns the transition table a toy-text environment exposes as
`env.unwrapped.P[s][a] = [(prob, next_state, reward, terminated), ...]` into dense
arrays: `P` (S, A, S) transition probabilities, `R` (S, A) expected one-step reward and
`terminal` (S,) the absorbing states an episode ends in (their value is 0).
`make_env` builds FrozenLake 4x4, 8x8, random or custom maps, slippery or not (or any
other gymnasium id), and `rollout_policy` scores a tabular policy on the real
environment over seeded episodes. gymnasium is imported where an environment or a map is made,
so the commands' flags answer without it.
"""
import sys
import zipfile
import zlib
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from common.cli import SEED_BOUNDS, Config, at_least, bounds, positive_int
from common.data import epoch_seed
from common.errors import DlsuiteError, UsageError

EVAL_SEED = 1_000_000  # evaluation episode i resets with epoch_seed(EVAL_SEED + seed, i)
MAP_HELP = "4x4, 8x8, random-<N> (an NxN random solvable map from --seed) or rows such as SFFF,FHFH,FFFH,HFFG"


@dataclass
class TabularConfig(Config):
    """Environment and evaluation settings shared by value iteration and Q-learning."""

    env: str = field(default="FrozenLake-v1", metadata={"help": "gymnasium id of an environment with a "
                                                                "transition table (env.unwrapped.P)"})
    map: str = field(default="4x4", metadata={"help": f"FrozenLake map: {MAP_HELP}"})
    slippery: bool = field(default=False, metadata={"help": "FrozenLake's slippery ice (move sideways w.p. 2/3)"})
    gamma: float = field(default=0.95, metadata=bounds("[0, 1]", "discount factor"))
    eval_episodes: int = field(default=1000, metadata=at_least(1, "greedy-policy episodes for success_rate"))
    seed: int = field(default=0, metadata=SEED_BOUNDS)

    def validate(self):
        super().validate()
        if self.env.startswith("FrozenLake"):
            frozen_lake_map(self.map, self.seed)


@dataclass(frozen=True)
class MDP:
    """A finite MDP as dense arrays.

    P: (S, A, S) probabilities P[s, a, s'] (rows sum to 1). R: (S, A) expected reward of
    taking a in s. terminal: (S,) bool, states an episode ends on entering (value 0).
    desc: the grid as rows of letters for grid worlds, else None.
    """

    P: np.ndarray
    R: np.ndarray
    terminal: np.ndarray
    desc: tuple = None

    @cached_property
    def successors(self):
        """P in sparse form: (next_states, probs), two (S, A, K) arrays, K the most successors of any (s, a).

        Row (s, a) lists the states with P[s, a, s'] > 0 (padded with probability 0), so a
        Bellman backup costs S * A * K instead of S * A * S.
        """
        k = int((self.P > 0).sum(axis=2).max())
        next_states = np.argsort(self.P == 0, axis=2, kind="stable")[:, :, :k]
        return next_states, np.take_along_axis(self.P, next_states, axis=2)

    @property
    def n_states(self):
        return self.P.shape[0]

    @property
    def n_actions(self):
        return self.P.shape[1]


def frozen_lake_map(name, seed=0):
    """The map rows for `--map`: "4x4", "8x8", "random-N" or comma-separated rows of S/F/H/G."""
    from gymnasium.envs.toy_text.frozen_lake import MAPS, generate_random_map

    if name in MAPS:
        return list(MAPS[name])
    if name.startswith("random-"):
        size = name.removeprefix("random-").split("x")[0]
        if not size.isdigit() or int(size) < 2:
            raise UsageError(f"unknown map {name!r}; use {MAP_HELP}")
        return generate_random_map(size=int(size), seed=seed)
    rows = name.split(",")
    if len(rows) > 1 and len({len(r) for r in rows}) == 1 and set("".join(rows)) <= set("SFHG") \
            and "".join(rows).count("S") == 1 and "G" in "".join(rows):
        return rows
    raise UsageError(f"unknown map {name!r}; use {MAP_HELP}")


def make_env(config):
    """The gymnasium environment of a TabularConfig.

    FrozenLake gets `map` and `slippery` and a time limit of 100 steps on 4x4 and 200 on 8x8
    (as gymnasium registers FrozenLake-v1 and FrozenLake8x8-v1), growing with the area beyond.
    """
    import gymnasium as gym

    kwargs = {}
    if config.env.startswith("FrozenLake"):
        desc = frozen_lake_map(config.map, config.seed)
        cells = len(desc) * len(desc[0])
        kwargs = {"desc": desc, "is_slippery": config.slippery, "max_episode_steps": max(100, 200 * cells // 64)}
    try:
        return gym.make(config.env, **kwargs)
    except gym.error.Error as e:
        raise UsageError(f"--env {config.env!r}: {e}") from None


def from_env(env):
    """Dense MDP of a gymnasium environment with a transition table `env.unwrapped.P`.

    Raises DlsuiteError (one line) for an environment without one (e.g. CartPole-v1).
    """
    import gymnasium as gym

    table = getattr(env.unwrapped, "P", None)
    spec_id = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    if not isinstance(table, dict) or not isinstance(env.observation_space, gym.spaces.Discrete) \
            or not isinstance(env.action_space, gym.spaces.Discrete):
        raise DlsuiteError(f"{spec_id} has no transition table (env.unwrapped.P over discrete states and actions); "
                           "value iteration needs a tabular environment such as FrozenLake-v1")
    n_states, n_actions = int(env.observation_space.n), int(env.action_space.n)
    rows = [(s, a, p, s2, r, done) for s in range(n_states) for a in range(n_actions)
            for p, s2, r, done in table[s][a]]
    s, a, p, s2, r, done = (np.array(col) for col in zip(*rows))
    P = np.zeros((n_states, n_actions, n_states))
    np.add.at(P, (s, a, s2), p)
    R = np.zeros((n_states, n_actions))
    np.add.at(R, (s, a), p * r)
    terminal = np.zeros(n_states, bool)
    terminal[s2[done.astype(bool)]] = True
    desc = getattr(env.unwrapped, "desc", None)
    if desc is not None:
        desc = tuple(b"".join(row).decode() for row in np.asarray(desc))
    return MDP(P, R, terminal, desc)


def rollout_policy(env, policy, episodes, seed):
    """Run the deterministic tabular `policy` (S,) for `episodes` episodes on `env`.

    Episode i starts from `env.reset(seed=epoch_seed(seed, i))`, so two policies scored with
    the same seed see the same random numbers (and seed s + 1 does not replay seed s shifted
    by one episode). Returns (returns, lengths), two (episodes,) arrays.
    """
    policy = np.asarray(policy)
    returns, lengths = np.zeros(episodes), np.zeros(episodes, int)
    for i in range(episodes):
        state, _ = env.reset(seed=epoch_seed(seed, i))
        done = False
        while not done:
            state, reward, terminated, truncated, _ = env.step(int(policy[state]))
            returns[i] += reward
            lengths[i] += 1
            done = terminated or truncated
    return returns, lengths


def policy_metrics(env, policy, episodes, seed):
    """{"success_rate", "mean_return", "mean_length"} of a greedy tabular policy over seeded episodes.

    success_rate is the fraction of episodes with a positive return (FrozenLake pays 1
    only on reaching the goal).
    """
    returns, lengths = rollout_policy(env, policy, episodes, seed)
    return {"success_rate": float(np.mean(returns > 0)), "mean_return": float(returns.mean()),
            "mean_length": float(lengths.mean()), "episodes": episodes}


def evaluate_saved_policy(ctx, filename):
    """The `evaluate` command of a tabular run: policy_metrics of the `policy` array in `filename`."""
    config = ctx.config
    path = ctx.run_dir / filename
    if not path.exists():
        raise DlsuiteError(f"{path} not found; is {ctx.run_dir} a run of python -m {ctx.prog}?")
    episodes = ctx.args.evaluate_episodes or config.eval_episodes
    env = make_env(config)
    return policy_metrics(env, read_policy(path, env, ctx.prog), episodes, EVAL_SEED + config.seed)


def read_policy(path, env, prog="rl.value_iteration"):
    """The greedy `policy` (S,) int array saved in the `.npz` file `path`, checked against `env`: one
    action in 0..A-1 for each of its S states. An empty, truncated or foreign file, or a policy of
    another shape, raises DlsuiteError naming the file and the way out (train the run again)."""
    fix = f"train a new run (python -m {prog} train) or pass the --run-dir of an intact one"
    try:
        saved = np.load(path, allow_pickle=False)
        if not isinstance(saved, np.lib.npyio.NpzFile):
            raise ValueError("a single array, not an .npz archive")
        with saved:
            if "policy" not in saved.files:
                raise DlsuiteError(f"{path} holds no 'policy' array; {fix}")
            policy = saved["policy"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DlsuiteError(f"{path} is damaged or not a saved policy ({str(e) or type(e).__name__}); {fix}") from None
    n_states, n_actions = env.observation_space.n, env.action_space.n
    if policy.shape != (n_states,) or policy.dtype.kind not in "iu" or not np.all((policy >= 0) & (policy < n_actions)):
        raise DlsuiteError(f"{path} holds a policy of shape {policy.shape} ({policy.dtype}); this environment needs "
                           f"one action in 0..{n_actions - 1} for each of its {n_states} states; {fix}")
    return policy


def evaluate_arguments(parser):
    # dest differs from the training setting `episodes` (Q-learning's), which the saved config holds
    parser.add_argument("--episodes", dest="evaluate_episodes", type=positive_int, default=None, metavar="N",
                        help="evaluation episodes (default: the run's --eval-episodes)")


def default_command(argv, commands):
    """Prepend `train` when no sub-command is given, so `python -m rl.<module> --map 8x8` works."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in (*commands, "-h", "--help"):
        argv.insert(0, "train")
    return argv
