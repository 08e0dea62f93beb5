"""Deep Q-network (Mnih et al. 2015) on a gymnasium environment, CartPole-v1 by default.

A Keras MLP Q-network trained off-policy from a replay buffer against a periodically
copied target network with the Huber loss, acting epsilon-greedily with a linearly
decaying epsilon, with Double DQN targets (van Hasselt et al. 2016) by default. The
schedule follows the rl-baselines3-zoo CartPole-v1 DQN setting (collect `train_freq`
environment steps, then take `gradient_steps` Adam steps on batches of `batch_size`;
256x256 ReLU MLP, learning rate 2.3e-3), with a default budget of 100k environment
steps: 40 epochs of `steps_per_epoch`. DQN's greedy policy on CartPole swings between
solving the task and failing as training goes on, so after each epoch it is scored on
`val_episodes` validation episodes (fixed seeds, disjoint from `evaluate`'s) and the
best-scoring weights are kept, the model selection a validation set gives in supervised
learning; `evaluate` and `model.keras` use those weights.

    python -m rl.dqn train [--epochs 40 --steps-per-epoch 2500 ...]
    python -m rl.dqn evaluate [--episodes 20]      # {"mean_return": ...}
    python -m rl.dqn predict --observation 0.1,0,-0.2,0.3   # {"action": ..., "q_values": [...]}
    python -m rl.dqn export --out DIR [--format tflite]    # SavedModel: observation -> action, q_values

The gradient steps run under `ctx.strategy` (a global batch split over replicas);
the environment, the replay buffer and the epsilon-greedy actor live on the host.
metrics.json / TensorBoard get per-epoch `episode_return`, `val_return`, `loss`,
`epsilon` and `env_steps_per_s`; `tensorboard/episodes` gets every episode's return
against the environment step.

The epoch loop is DQN's own rather than `common.training.fit`'s: `fit` drives
`keras.Model.fit` over a `tf.data` pipeline, while a DQN epoch interleaves acting in the
environment with training rounds on batches drawn from a replay buffer the acting fills,
and its checkpoint holds more than a model (target and best networks, the buffer, the step
counter). It uses the same pieces as `fit`: `Run` for metrics.json, TensorBoard and
checkpoints, `StopOnInterrupt` for Ctrl-C, and `epoch_rng` for per-epoch seeds.
"""
import argparse
import math
import sys
from dataclasses import dataclass, field

from common import cli
from common.errors import UsageError
from common.export import add_arguments as export_arguments


@dataclass
class Config(cli.TrainConfig):
    epochs: int = field(default=40, metadata={"help": "epochs of --steps-per-epoch environment steps"})
    batch_size: int = field(default=64, metadata={"help": "global minibatch size of a gradient step"})
    lr: float = field(default=2.3e-3, metadata={"help": "Adam learning rate"})
    env: str = field(default="CartPole-v1", metadata={"help": "gymnasium id (Box observations, Discrete actions)"})
    steps_per_epoch: int = field(default=2500, metadata=cli.at_least(1, "environment steps per epoch"))
    hidden: int = field(default=256, metadata=cli.at_least(1, "units of each hidden layer"))
    layers: int = field(default=2, metadata=cli.at_least(1, "hidden layers"))
    gamma: float = field(default=0.99, metadata=cli.bounds("[0, 1]", "discount factor"))
    buffer_size: int = field(default=100_000, metadata=cli.at_least(1, "replay buffer capacity (transitions)"))
    learning_starts: int = field(default=1000, metadata={"help": "environment steps before the first update"})
    train_freq: int = field(default=256, metadata=cli.at_least(1, "environment steps between training rounds"))
    gradient_steps: int = field(default=128, metadata=cli.at_least(1, "gradient steps per training round"))
    target_update: int = field(default=256, metadata=cli.at_least(1, "environment steps between target-network copies"))
    eps_start: float = field(default=1.0, metadata=cli.bounds("[0, 1]", "initial exploration rate"))
    eps_end: float = field(default=0.04, metadata=cli.bounds("[0, 1]", "final exploration rate"))
    eps_decay_steps: int = field(default=8000, metadata=cli.at_least(
        1, "environment steps of the linear epsilon decay"))
    double_q: bool = field(default=True, metadata={"help": "Double DQN targets (online net picks the action)"})
    val_episodes: int = field(default=50, metadata=cli.at_least(
        1, "greedy validation episodes after each epoch (the same seeds every epoch)"))

    def validate(self):
        super().validate()
        if self.learning_starts < self.batch_size:
            raise UsageError(f"--learning-starts ({self.learning_starts}) must be at least --batch-size "
                             f"({self.batch_size}) so the first batch can be sampled")


DEMO = {"epochs": 2, "steps_per_epoch": 1500, "learning_starts": 500, "gradient_steps": 32,
        "eps_decay_steps": 1000, "hidden": 64, "val_episodes": 3}


def _evaluate_arguments(parser):
    parser.add_argument("--episodes", type=cli.positive_int, default=20, help="evaluation episodes (default: 20)")


def _observation(text):
    try:
        values = tuple(float(v) for v in text.split(","))
        if not all(math.isfinite(v) for v in values):
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated numbers like 0.1,0,-0.2,0.3, got {text!r}") from None
    return values


def _predict_arguments(parser):
    parser.add_argument("--observation", type=_observation, required=True, metavar="X,X,...",
                        help="one observation, comma-separated (CartPole: position, velocity, angle, angular "
                             "velocity); write --observation=-0.1,... when it starts with a minus sign")


MODEL = cli.ModelModule("rl.dqn_model")  # the agent and its training, imported (with TensorFlow, gymnasium) when run
__getattr__ = MODEL.forward  # rl.dqn.Agent, .ReplayBuffer, .build_q_network, ... from rl.dqn_model

COMMANDS = {
    "train": cli.Command(MODEL.command("train"), "train a deep Q-network", trains=True, reads_data=False),
    "evaluate": cli.Command(MODEL.command("evaluate"), "mean return of the trained greedy policy",
                            add_arguments=_evaluate_arguments, reads_data=False),
    "predict": cli.Command(MODEL.command("predict"), "the greedy action and Q-values for one observation",
                           add_arguments=_predict_arguments, reads_data=False),
    "export": cli.Command(MODEL.command("export"), "write the greedy policy as a SavedModel (and TFLite) to serve",
                          add_arguments=export_arguments, reads_data=False),
}
SPEC = cli.Spec("rl.dqn", "Deep Q-network on a gymnasium environment (CartPole-v1)", Config, COMMANDS, DEMO,
                model=MODEL)
main, load = SPEC.main, SPEC.load
train, evaluate, predict = SPEC.api("train"), SPEC.api("evaluate"), SPEC.api("predict")
export = SPEC.api("export")


if __name__ == "__main__":
    sys.exit(main())
