"""Q-learning environment steps/s on FrozenLake, against gymnasium's own step rate.

    python -m benchmarks.rl_q_learning
"""
import numpy as np

from benchmarks.harness import measure
from rl import mdp
from rl.q_learning import q_learning

EPISODES = 3000


def env_steps_only(env, steps, seed=0):
    """Random-action stepping with no learning: the environment's share of the cost."""
    actions = np.random.default_rng(seed).integers(4, size=steps).tolist()
    env.reset(seed=seed)
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()


def main():
    for map_name, slippery in (("4x4", True), ("8x8", False)):
        config = mdp.TabularConfig(map=map_name, slippery=slippery)
        env = mdp.make_env(config)
        steps = q_learning(env, env.observation_space.n, 4, 0.95, 0.9, 0.9, EPISODES, 0)[3]
        q = measure(f"q_learning {map_name}{' slippery' if slippery else ''} ({EPISODES} episodes)",
                    lambda: q_learning(env, env.observation_space.n, 4, 0.95, 0.9, 0.9, EPISODES, 0), steps,
                    "env_steps", repeat=2)
        raw = measure(f"gymnasium FrozenLake {map_name} step only", lambda: env_steps_only(env, steps), steps,
                      "env_steps", repeat=2)
        print(f"# q_learning runs at {q['rate'] / raw['rate']:.2f} of the bare environment step rate")


if __name__ == "__main__":
    main()
