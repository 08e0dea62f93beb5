"""DQN's agent (Q-network, replay buffer, epsilon-greedy actor), its epoch loop and evaluation
(`rl.dqn` is its command and configuration).

Everything that needs TensorFlow or gymnasium lives here, so `python -m rl.dqn --help` and a
usage error answer without loading them.
"""
import sys
import time

import gymnasium as gym
import keras
import numpy as np
import tensorflow as tf

from common import distribute, training
from common.data import epoch_rng
from common.errors import UsageError
from common.plots import learning_curves
from rl.plots import returns_histogram

EVAL_SEED_BASE = 1_000_000
VALIDATION_SEED_BASE = 2_000_000


def make_env(env_id):
    """`gym.make(env_id)`, checked to have Box observations and Discrete actions (else UsageError)."""
    try:
        env = gym.make(env_id)
    except gym.error.Error as e:
        raise UsageError(f"--env {env_id!r}: {e}") from None
    if not isinstance(env.action_space, gym.spaces.Discrete) or not isinstance(env.observation_space,
                                                                               gym.spaces.Box):
        raise UsageError(f"--env {env_id!r}: DQN needs Box observations and Discrete actions, got "
                         f"{env.observation_space} and {env.action_space}")
    return env


def build_q_network(obs_dim, n_actions, hidden, layers):
    """MLP Q-network: (batch, obs_dim) observations -> (batch, n_actions) action values."""
    inputs = keras.Input((obs_dim,))
    x = inputs
    for i in range(layers):
        x = keras.layers.Dense(hidden, activation="relu", name=f"hidden_{i}")(x)
    return keras.Model(inputs, keras.layers.Dense(n_actions, name="q_values")(x), name="q_network")


def epsilon_at(step, config):
    """Linearly decayed exploration rate after `step` environment steps."""
    frac = min(1.0, step / config.eps_decay_steps)
    return config.eps_start + frac * (config.eps_end - config.eps_start)


class ReplayBuffer:
    """Circular buffer of transitions in NumPy, mirrored into `tf.Variable`s for checkpoints.

    Stores (obs, action, reward, next_obs, terminated); `terminated` (not `truncated`)
    stops bootstrapping, so time-limit ends are bootstrapped as they should be.
    """

    def __init__(self, capacity, obs_dim):
        self.capacity = capacity
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.actions = np.zeros(capacity, np.int32)
        self.rewards = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, np.float32)
        self.size = 0
        self.position = 0
        self.state = tf.Module()
        for name in ("obs", "next_obs", "actions", "rewards", "terminated"):
            setattr(self.state, name, tf.Variable(getattr(self, name), trainable=False))
        self.state.counters = tf.Variable([0, 0], dtype=tf.int64, trainable=False)

    def add(self, obs, action, reward, next_obs, terminated):
        i = self.position
        self.obs[i], self.actions[i], self.rewards[i] = obs, action, reward
        self.next_obs[i], self.terminated[i] = next_obs, terminated
        self.position = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, rng, rounds, batch_size):
        """`rounds` minibatches of uniformly drawn transitions, each array (rounds, batch, ...)."""
        idx = rng.integers(0, self.size, size=(rounds, batch_size))
        return (self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx], self.terminated[idx])

    def to_variables(self):
        for name in ("obs", "next_obs", "actions", "rewards", "terminated"):
            getattr(self.state, name).assign(getattr(self, name))
        self.state.counters.assign([self.size, self.position])

    def from_variables(self):
        for name in ("obs", "next_obs", "actions", "rewards", "terminated"):
            setattr(self, name, getattr(self.state, name).numpy())
        self.size, self.position = (int(v) for v in self.state.counters.numpy())


def make_train_round(q_net, target_net, optimizer, strategy, gamma, double_q):
    """A tf.function running one training round: `rounds` gradient steps on the given minibatches.

    Arguments are (rounds, global_batch, ...) tensors; each replica takes its slice of
    every minibatch, computes the mean Huber TD loss over it, and the strategy sums the
    scaled gradients, so N replicas take the same step as one. Returns the mean loss.
    """
    replicas = strategy.num_replicas_in_sync

    def replica_step(obs, actions, rewards, next_obs, terminated):
        per = tf.shape(obs)[0] // replicas
        start = tf.distribute.get_replica_context().replica_id_in_sync_group * per
        obs, actions, rewards, next_obs, terminated = (
            t[start:start + per] for t in (obs, actions, rewards, next_obs, terminated))
        next_q = target_net(next_obs, training=False)
        if double_q:
            best = tf.argmax(q_net(next_obs, training=False), axis=-1, output_type=tf.int32)
            next_value = tf.gather(next_q, best, batch_dims=1)
        else:
            next_value = tf.reduce_max(next_q, axis=-1)
        target = tf.stop_gradient(rewards + gamma * (1.0 - terminated) * next_value)
        with tf.GradientTape() as tape:
            q = tf.gather(q_net(obs, training=True), actions, batch_dims=1)
            # Keras' huber function (delta 1); the Huber loss object would divide by the replica
            # count inside the replica context, on top of scale_loss
            loss = tf.reduce_mean(keras.losses.huber(target[:, None], q[:, None]))
            scaled = distribute.scale_loss(loss)
        grads = tape.gradient(scaled, q_net.trainable_variables)
        optimizer.apply_gradients(zip(grads, q_net.trainable_variables))
        return loss

    @tf.function
    def train_round(obs, actions, rewards, next_obs, terminated):
        total = tf.constant(0.0)
        rounds = tf.shape(obs)[0]
        for i in tf.range(rounds):
            losses = strategy.run(replica_step, args=(obs[i], actions[i], rewards[i], next_obs[i], terminated[i]))
            total += strategy.reduce(tf.distribute.ReduceOp.MEAN, losses, axis=None)
        return total / tf.cast(rounds, tf.float32)

    return train_round


def copy_weights(source, target):
    for s, t in zip(source.weights, target.weights):
        t.assign(s)


def greedy_policy(q_net):
    """A tf.function mapping (n, obs_dim) observations to (n,) greedy actions (traced once for any n)."""
    spec = tf.TensorSpec((None, q_net.input_shape[-1]), tf.float32)
    return tf.function(lambda obs: tf.argmax(q_net(obs, training=False), axis=-1, output_type=tf.int32),
                       input_signature=[spec])


def run_episodes(env_id, policy, seeds):
    """Undiscounted returns (n,) of `policy` on one episode per seed, all envs stepped in lockstep."""
    envs = [make_env(env_id) for _ in seeds]
    obs = np.stack([env.reset(seed=int(s))[0] for env, s in zip(envs, seeds)]).astype(np.float32)
    returns = np.zeros(len(seeds))
    active = np.ones(len(seeds), bool)
    while active.any():
        idx = np.flatnonzero(active)
        actions = policy(obs[idx]).numpy()
        for i, a in zip(idx, actions):
            obs[i], reward, terminated, truncated, _ = envs[i].step(int(a))
            returns[i] += reward
            active[i] = not (terminated or truncated)
    for env in envs:
        env.close()
    return returns


class Agent:
    """The networks, optimizer and replay buffer of a DQN run, built under the strategy."""

    def __init__(self, config, strategy):
        env = make_env(config.env)
        self.obs_dim = int(np.prod(env.observation_space.shape))
        self.n_actions = int(env.action_space.n)
        env.close()
        with strategy.scope():
            self.q_net = build_q_network(self.obs_dim, self.n_actions, config.hidden, config.layers)
            self.target_net = build_q_network(self.obs_dim, self.n_actions, config.hidden, config.layers)
            self.best_net = build_q_network(self.obs_dim, self.n_actions, config.hidden, config.layers)
            self.optimizer = keras.optimizers.Adam(config.lr)
            self.optimizer.build(self.q_net.trainable_variables)
        copy_weights(self.q_net, self.target_net)
        copy_weights(self.q_net, self.best_net)
        self.buffer = ReplayBuffer(config.buffer_size, self.obs_dim)
        self.progress = tf.Module()
        self.progress.env_steps = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.progress.best_return = tf.Variable(-np.inf, dtype=tf.float64, trainable=False)

    def checkpoint_objects(self):
        return {"model": self.q_net, "target": self.target_net, "best": self.best_net,
                "optimizer": self.optimizer, "buffer": self.buffer.state, "progress": self.progress}


def run_epoch(agent, config, epoch, train_round, act, episode_writer):
    """Collect `steps_per_epoch` environment steps (training every `train_freq`); return the epoch's logs.

    `episode_return` (mean over episodes finished in the epoch) and `loss` (mean over its
    training rounds) are left out of an epoch that has none.

    The environment is reset with seed (seed, epoch) and the exploration RNG is seeded the
    same way, so a run resumed from the epoch's checkpoint repeats it exactly. An episode
    still running at the end of the epoch is cut there (bootstrapped, not counted).
    """
    rng = epoch_rng(config.seed, epoch)
    env = make_env(config.env)
    obs, _ = env.reset(seed=int(rng.integers(2**31)))
    step = int(agent.progress.env_steps.numpy())
    episode_return, returns, losses = 0.0, [], []
    tic = time.perf_counter()
    for _ in range(config.steps_per_epoch):
        if rng.random() < epsilon_at(step, config):
            action = int(rng.integers(agent.n_actions))
        else:
            action = int(act(obs[None].astype(np.float32))[0])
        next_obs, reward, terminated, truncated, _ = env.step(action)
        agent.buffer.add(obs, action, reward, next_obs, terminated)
        episode_return += reward
        obs = next_obs
        step += 1
        if terminated or truncated:
            returns.append(episode_return)
            with episode_writer.as_default():
                tf.summary.scalar("episodic_return", episode_return, step=step)
            episode_return = 0.0
            obs, _ = env.reset()
        if step > config.learning_starts and step % config.train_freq == 0:
            batch = agent.buffer.sample(rng, config.gradient_steps, config.batch_size)
            losses.append(float(train_round(*batch)))
        if step % config.target_update == 0:
            copy_weights(agent.q_net, agent.target_net)
    seconds = time.perf_counter() - tic
    env.close()
    agent.progress.env_steps.assign(step)
    episode_writer.flush()
    logs = {"env_steps": step, "env_steps_per_s": round(config.steps_per_epoch / seconds, 1),
            "episodes": len(returns), "epsilon": epsilon_at(step, config)}
    if returns:
        logs["episode_return"] = float(np.mean(returns))
    if losses:
        logs["loss"] = float(np.mean(losses))
    return logs


def build(config, strategy):
    """The `Agent` of `config` (networks and optimizer under `strategy`, an empty replay buffer)."""
    return Agent(config, strategy)


def restore(ctx, agent, names=None):
    """Restore `agent`'s checkpointed objects (all, or the given names) from the run's newest
    checkpoint; returns its epoch."""
    objects = agent.checkpoint_objects()
    return ctx.restore({name: objects[name] for name in (names or objects)})


def train(ctx):
    """Train a DQN; every epoch logs metrics, validates the greedy policy and checkpoints."""
    config = ctx.config
    distribute.per_replica_batch_size(config.batch_size, ctx.strategy)
    agent = build(config, ctx.strategy)
    run = ctx.run()
    objects = agent.checkpoint_objects()
    start = 0
    if run.resume:
        start = restore(ctx, agent)
        agent.buffer.from_variables()
        print(f"resumed from {run.latest_checkpoint()} (epoch {start})", file=sys.stderr)
    train_round = make_train_round(agent.q_net, agent.target_net, agent.optimizer, ctx.strategy,
                                   config.gamma, config.double_q)
    act = greedy_policy(agent.q_net)
    episode_writer = tf.summary.create_file_writer(str(run.file("tensorboard") / "episodes"))
    validation_seeds = VALIDATION_SEED_BASE + np.arange(config.val_episodes)
    with training.StopOnInterrupt() as interrupt:
        for epoch in range(start, config.epochs):
            tic = time.perf_counter()
            logs = {"epoch": epoch + 1, **run_epoch(agent, config, epoch, train_round, act, episode_writer)}
            logs["val_return"] = float(np.mean(run_episodes(config.env, act, validation_seeds)))
            if logs["val_return"] >= agent.progress.best_return.numpy():
                agent.progress.best_return.assign(logs["val_return"])
                copy_weights(agent.q_net, agent.best_net)
            logs["best_val_return"] = float(agent.progress.best_return.numpy())
            logs["time_s"] = round(time.perf_counter() - tic, 3)
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in logs.items()),
                  flush=True)
            run.log_epoch(logs)
            agent.buffer.to_variables()
            run.save_checkpoint(epoch + 1, objects)
            if interrupt.requested:
                print(f"stopped after epoch {epoch + 1}; continue with --resume --run-dir {run.path}", file=sys.stderr)
                break
    if run.chief:
        training.save_keras_model(agent.best_net, run.file("model.keras"))
        learning_curves(run.metrics, run.file("curves.png"),
                        keys=["episode_return", "val_return", "loss", "epsilon", "env_steps_per_s"])
    last = run.metrics[-1]
    return {"env_steps": last["env_steps"], "episode_return": last.get("episode_return"),
            "best_val_return": last["best_val_return"]}


def evaluate(ctx):
    """Mean undiscounted return of the kept (best-validation) greedy policy over seeded episodes."""
    config = ctx.config
    agent = build(config, distribute.make_strategy("default"))
    restore(ctx, agent, ["best"])
    seeds = EVAL_SEED_BASE + np.arange(ctx.args.episodes)
    returns = run_episodes(config.env, greedy_policy(agent.best_net), seeds)
    returns_histogram(returns, ctx.run_dir / "eval_returns.png", title=f"{config.env}: greedy returns")
    return {"mean_return": float(returns.mean()), "std_return": float(returns.std()),
            "min_return": float(returns.min()), "episodes": len(returns)}


def predict(ctx):
    """The greedy action and the Q-values `(n_actions,)` of the kept (best-validation) network for one
    `--observation`, as the environment gives it (Box, flattened)."""
    config = ctx.config
    agent = build(config, distribute.make_strategy("default"))
    observation = np.asarray(ctx.args.observation, np.float32)
    if observation.shape != (agent.obs_dim,):
        raise UsageError(f"--observation has {observation.size} values; {config.env} observations have {agent.obs_dim}")
    restore(ctx, agent, ["best"])
    q_values = agent.best_net(observation[None, :], training=False).numpy()[0]
    return {"action": int(np.argmax(q_values)), "q_values": [float(q) for q in q_values]}


def export(ctx):
    """Write the kept (best-validation) Q-network as a SavedModel (`common.export`): input `observation`
    float32 (batch, obs_dim) as the environment gives it (Box, flattened); outputs `q_values` float32
    (batch, n_actions) and `action` int32 (batch,), the greedy action (the first on a tie, as `predict`)."""
    from common import export as exporting

    options = exporting.options(ctx.args)  # --out and --format/--quantize checked before the agent is built
    config = ctx.config
    agent = build(config, distribute.make_strategy("default"))
    restore(ctx, agent, ["best"])
    module = tf.Module()
    module.q_net = agent.best_net

    @tf.function(input_signature=[tf.TensorSpec([None, agent.obs_dim], tf.float32, name="observation")])
    def serve(observation):
        q_values = tf.cast(module.q_net(observation, training=False), tf.float32)
        return {"q_values": q_values, "action": tf.argmax(q_values, axis=-1, output_type=tf.int32)}

    example = ", ".join(["0.0"] * agent.obs_dim)
    readme = (f"DQN greedy policy for {config.env} (python -m rl.dqn export, run {ctx.run_dir}).\n"
              f"Input: observation, float32 [batch, {agent.obs_dim}], as the environment returns it.\n"
              f"Outputs: q_values float32 [batch, {agent.n_actions}], action int32 [batch] (argmax of q_values).\n\n"
              "Example (Python, TensorFlow only):\n"
              "  import tensorflow as tf\n"
              "  serve = tf.saved_model.load(DIR).signatures['serving_default']\n"
              f"  serve(observation=tf.constant([[{example}]]))['action']\n")
    return exporting.write(ctx.args.out, module, {"serving_default": serve}, readme=readme, **options,
                           representative_dataset=_representative_observations(config.env, agent.obs_dim))


def _representative_observations(env_id, obs_dim, steps=200, seed=EVAL_SEED_BASE):
    """TFLite's representative dataset for int8 calibration: `steps` observations of seeded episodes under
    random actions, one (1, obs_dim) float32 batch at a time."""
    def batches():
        env = make_env(env_id)
        env.action_space.seed(seed)
        obs, _ = env.reset(seed=seed)
        for _ in range(steps):
            yield [np.asarray(obs, np.float32).reshape(1, obs_dim)]
            obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                obs, _ = env.reset()
    return batches
