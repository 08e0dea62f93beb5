"""Value iteration on a tabular gymnasium environment (D2L 17.2), FrozenLake by default.

    python -m rl.value_iteration [--map 4x4|8x8|random-N|ROWS] [--slippery] [--gamma 0.95]
    python -m rl.value_iteration evaluate [--run-dir DIR] [--episodes N]

The first form (the same as `train`) runs vectorized Bellman backups on the MDP's arrays
until the largest change of V in a sweep is below `--tol` (or `--max-sweeps`), checks V
against the exact value of its greedy policy, scores that policy on the real
environment, and writes `solution.npz`, `value_policy.png` (V as a heat map, the policy
as arrows) and `residuals.png` (the Bellman residual per sweep) into the run directory.
The last line of stdout is JSON with `success_rate`.
"""
import sys
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from common import cli
from common.files import atomic_path
from common.errors import DlsuiteError, UsageError
from rl import mdp


@dataclass
class Config(mdp.TabularConfig):
    tol: float = field(default=1e-10, metadata=cli.bounds(
        "[0, inf)", "stop when no state value changes by more than this in a sweep (0: run --max-sweeps sweeps)"))
    max_sweeps: int = field(default=10_000, metadata=cli.at_least(1, "upper bound on Bellman sweeps"))

    def validate(self):
        super().validate()
        if self.gamma == 1.0 and self.tol == 0:
            raise UsageError("--gamma 1 needs a positive --tol (undiscounted values need a convergence test)")


DEMO = {"map": "4x4", "eval_episodes": 200}


class ValueIterationResult(NamedTuple):
    """values (S,), q_values (S, A), policy (S,) greedy actions, sweeps run, residuals (sweeps,)."""

    values: np.ndarray
    q_values: np.ndarray
    policy: np.ndarray
    sweeps: int
    residuals: np.ndarray


def q_from_values(mdp_, values, gamma):
    """One Bellman backup: Q[s, a] = R[s, a] + gamma * sum_s' P[s, a, s'] V[s'], with V = 0 on terminals.

    Terminal states get Q = 0 (nothing happens after the episode ends). The sum runs over
    the sparse successor lists of `mdp_.successors` (K per (s, a), 3 on slippery
    FrozenLake) as one gather. Shapes (S,) -> (S, A).
    """
    next_states, probs = mdp_.successors
    q = mdp_.R + gamma * (probs * np.where(mdp_.terminal, 0.0, values)[next_states]).sum(axis=2)
    q[mdp_.terminal] = 0.0
    return q


def value_iteration(mdp_, gamma, tol=1e-10, max_sweeps=10_000):
    """Optimal values by repeated Bellman optimality backups V <- max_a Q(V), starting from V = 0.

    Each sweep is one vectorized backup over all (s, a) (see `q_from_values`). Stops after the first sweep whose largest
    change |V_new - V| is at most `tol`, or after `max_sweeps`. With gamma < 1 the greedy
    policy of the result is within 2 gamma tol / (1 - gamma) of optimal. Returns a
    ValueIterationResult.
    """
    values = np.zeros(mdp_.n_states)
    residuals = []
    for _ in range(max_sweeps):
        new_values = q_from_values(mdp_, values, gamma).max(axis=1)
        residuals.append(float(np.max(np.abs(new_values - values))))
        values = new_values
        if residuals[-1] <= tol:
            break
    q_values = q_from_values(mdp_, values, gamma)
    return ValueIterationResult(values, q_values, q_values.argmax(axis=1), len(residuals), np.array(residuals))


def policy_evaluation(mdp_, policy, gamma):
    """Exact values (S,) of a deterministic policy (S,) by solving (I - gamma P_pi) V = R_pi.

    P_pi drops transitions into terminal states (their value is 0). Raises DlsuiteError
    when the system is singular (gamma = 1 and the policy never ends from some state).
    """
    states = np.arange(mdp_.n_states)
    p_pi = mdp_.P[states, policy] * ~mdp_.terminal[None, :]
    r_pi = mdp_.R[states, policy]
    p_pi[mdp_.terminal] = 0.0
    r_pi = np.where(mdp_.terminal, 0.0, r_pi)
    try:
        return np.linalg.solve(np.eye(mdp_.n_states) - gamma * p_pi, r_pi)
    except np.linalg.LinAlgError:
        raise DlsuiteError("policy evaluation is singular: with gamma = 1 the policy never terminates "
                           "from some state; use --gamma below 1") from None


def _solve(config):
    env = mdp.make_env(config)
    model = mdp.from_env(env)
    return env, model, value_iteration(model, config.gamma, config.tol, config.max_sweeps)


def _train(ctx):
    """Solve the MDP, check V against exact policy evaluation, score and plot the greedy policy."""
    from rl.plots import curve, value_policy_map  # matplotlib: loaded when a run draws, not for --help

    config = ctx.config
    env, model, result = _solve(config)
    run = ctx.run()
    exact = policy_evaluation(model, result.policy, config.gamma) if config.gamma < 1 else result.values
    with atomic_path(run.file("solution.npz")) as tmp:
        np.savez(tmp, values=result.values, q_values=result.q_values, policy=result.policy,
                 residuals=result.residuals)
    if model.desc is not None:
        value_policy_map(result.values, result.policy, model.desc, run.file("value_policy.png"),
                         title=f"value iteration, {config.map}{' slippery' if config.slippery else ''}, "
                               f"gamma={config.gamma}")
    curve(result.residuals, run.file("residuals.png"), "sweep", "max |V_new - V|", title="Bellman residual")
    metrics = mdp.policy_metrics(env, result.policy, config.eval_episodes, mdp.EVAL_SEED + config.seed)
    metrics.update(sweeps=result.sweeps, start_value=float(result.values[0]),
                   policy_eval_error=float(np.max(np.abs(exact - result.values))))
    run.write_json("metrics.json", metrics)
    return metrics


def _evaluate(ctx):
    """Success rate of the run's saved greedy policy over seeded episodes."""
    return mdp.evaluate_saved_policy(ctx, "solution.npz")


COMMANDS = {
    "train": cli.Command(_train, "run value iteration and score its greedy policy (the default)",
                         configurable=True, reads_data=False),
    "evaluate": cli.Command(_evaluate, "success rate of a saved policy", add_arguments=mdp.evaluate_arguments,
                             reads_data=False),
}

SPEC = cli.Spec("rl.value_iteration", "Value iteration on FrozenLake (or any tabular gymnasium env)", Config, COMMANDS,
                DEMO)
train, evaluate = SPEC.api("train"), SPEC.api("evaluate")  # no load: the run holds arrays, not a Keras model


def main(argv=None):
    return SPEC.main(mdp.default_command(argv, COMMANDS))


if __name__ == "__main__":
    sys.exit(main())
