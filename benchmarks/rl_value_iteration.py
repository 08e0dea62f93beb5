"""Value-iteration sweeps/s on 8x8 and 32x32 random slippery FrozenLake maps.

Compares the vectorized backup (`rl.value_iteration.value_iteration`: one gather over the
sparse successor lists per sweep), the dense (S, A, S) x (S,) product, and the book's loop
over states, actions and transition-table entries, as ratios in the same run.

    python -m benchmarks.rl_value_iteration
"""
import numpy as np

from benchmarks.harness import measure
from rl import mdp
from rl.value_iteration import value_iteration

SWEEPS = 50


def looped_sweeps(table, n_states, n_actions, gamma, sweeps):
    """The book's value iteration: Python loops over s, a and the table's (p, s', r, done) entries."""
    values = np.zeros(n_states)
    for _ in range(sweeps):
        new_values = np.zeros(n_states)
        for s in range(n_states):
            new_values[s] = max(sum(p * (r + gamma * values[s2] * (not done)) for p, s2, r, done in table[s][a])
                                for a in range(n_actions))
        values = new_values
    return values


def dense_sweeps(model, gamma, sweeps):
    """The same backups as one dense (S, A, S) x (S,) product per sweep."""
    values = np.zeros(model.n_states)
    for _ in range(sweeps):
        values = (model.R + gamma * model.P @ np.where(model.terminal, 0.0, values)).max(axis=1)
        values[model.terminal] = 0.0
    return values


def main():
    for name in ("random-8", "random-32"):
        env = mdp.make_env(mdp.TabularConfig(map=name, slippery=True))
        model = mdp.from_env(env)
        fast = measure(f"value_iteration vectorized {name} ({model.n_states} states)",
                       lambda: value_iteration(model, 0.95, tol=0, max_sweeps=SWEEPS), SWEEPS, "sweeps")
        dense = measure(f"value_iteration dense P @ V {name}", lambda: dense_sweeps(model, 0.95, SWEEPS), SWEEPS,
                        "sweeps")
        loop_sweeps = SWEEPS if model.n_states <= 64 else 5
        slow = measure(f"value_iteration python loops {name} ({model.n_states} states)",
                       lambda: looped_sweeps(env.unwrapped.P, model.n_states, model.n_actions, 0.95, loop_sweeps),
                       loop_sweeps, "sweeps", repeat=1)
        measure(f"value_iteration to tol 1e-10 {name}", lambda: value_iteration(model, 0.95), 1, "solves",
                sweeps=value_iteration(model, 0.95).sweeps, speedup_vs_loops=round(fast["rate"] / slow["rate"], 1),
                speedup_vs_dense=round(fast["rate"] / dense["rate"], 1))


if __name__ == "__main__":
    main()
