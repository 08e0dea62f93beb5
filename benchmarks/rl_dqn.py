"""DQN throughput on CartPole-v1: environment steps/s with training, and gradient steps/s.

    python -m benchmarks.rl_dqn
"""
import tempfile

import numpy as np
import tensorflow as tf

from benchmarks.harness import measure, report
from common import distribute
from rl import dqn


def main():
    with tempfile.TemporaryDirectory(prefix="rl-bench-") as logdir:
        measure_all(tf.summary.create_file_writer(logdir))


def measure_all(writer):
    config = dqn.Config(steps_per_epoch=5000, learning_starts=1000)
    strategy = distribute.make_strategy("default")
    agent = dqn.Agent(config, strategy)
    train_round = dqn.make_train_round(agent.q_net, agent.target_net, agent.optimizer, strategy, config.gamma,
                                       config.double_q)
    act = dqn.greedy_policy(agent.q_net)
    dqn.run_epoch(agent, config, 0, train_round, act, writer)  # warm-up: tracing, filled buffer
    logs = dqn.run_epoch(agent, config, 1, train_round, act, writer)
    report("dqn CartPole-v1 epoch (acting + training rounds)", "env_steps", config.steps_per_epoch,
           config.steps_per_epoch / logs["env_steps_per_s"], train_freq=config.train_freq,
           gradient_steps=config.gradient_steps, batch_size=config.batch_size)
    batch = agent.buffer.sample(np.random.default_rng(0), config.gradient_steps, config.batch_size)
    measure(f"dqn train_round ({config.gradient_steps} steps, batch {config.batch_size})",
            lambda: float(train_round(*batch)), config.gradient_steps * config.batch_size, "examples",
            gradient_steps_per_call=config.gradient_steps)
    obs = np.zeros((1, 4), np.float32)
    measure("dqn greedy action (1 observation)", lambda: [act(obs) for _ in range(500)], 500, "actions")


if __name__ == "__main__":
    main()
