import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from common import distribute, training
from rl import dqn

TINY = ["--epochs", "2", "--steps-per-epoch", "300", "--learning-starts", "100", "--train-freq", "50",
        "--gradient-steps", "4", "--hidden", "16", "--batch-size", "32", "--eps-decay-steps", "200",
        "--val-episodes", "2", "--buffer-size", "1000", "--target-update", "100"]


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def random_batch(rounds, batch, seed=0, terminal_fraction=0.3):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(rounds, batch, 4)).astype(np.float32),
            rng.integers(2, size=(rounds, batch)).astype(np.int32),
            rng.normal(size=(rounds, batch)).astype(np.float32),
            rng.normal(size=(rounds, batch, 4)).astype(np.float32),
            (rng.random((rounds, batch)) < terminal_fraction).astype(np.float32))


def networks(strategy, weights=None):
    with strategy.scope():
        q_net, target_net = dqn.build_q_network(4, 2, 16, 2), dqn.build_q_network(4, 2, 16, 2)
        optimizer = keras.optimizers.Adam(1e-2)
        optimizer.build(q_net.trainable_variables)
    if weights is not None:
        q_net.set_weights(weights[0])
        target_net.set_weights(weights[1])
    return q_net, target_net, optimizer


def huber(x):
    return np.where(np.abs(x) <= 1, 0.5 * x ** 2, np.abs(x) - 0.5)


@pytest.mark.parametrize("double_q", [False, True])
def test_td_loss_by_hand(double_q):
    strategy = distribute.make_strategy("default")
    q_net, target_net, optimizer = networks(strategy)
    obs, actions, rewards, next_obs, terminated = batch = random_batch(1, 64)
    q = q_net(obs[0]).numpy()
    next_target = target_net(next_obs[0]).numpy()
    if double_q:
        next_value = next_target[np.arange(64), q_net(next_obs[0]).numpy().argmax(1)]
    else:
        next_value = next_target.max(1)
    td = rewards[0] + 0.9 * (1 - terminated[0]) * next_value - q[np.arange(64), actions[0]]
    train_round = dqn.make_train_round(q_net, target_net, optimizer, strategy, 0.9, double_q)
    assert float(train_round(*batch)) == pytest.approx(huber(td).mean(), rel=1e-5)
    assert not np.allclose(q_net(obs[0]).numpy(), q)  # the step moved the network


def test_regresses_terminal_rewards():
    # Only terminal transitions: the target is the reward, so Q(s, a) must fit r(s, a) = s_0 + a.
    strategy = distribute.make_strategy("default")
    q_net, target_net, optimizer = networks(strategy)
    obs, actions, _, next_obs, _ = random_batch(150, 64, seed=1)
    rewards = (obs[..., 0] + actions).astype(np.float32)
    train_round = dqn.make_train_round(q_net, target_net, optimizer, strategy, 0.99, True)
    first = float(train_round(obs[:1], actions[:1], rewards[:1], next_obs[:1], np.ones((1, 64), np.float32)))
    train_round(obs, actions, rewards, next_obs, np.ones((150, 64), np.float32))
    test_obs = np.random.default_rng(2).normal(size=(256, 4)).astype(np.float32)
    predicted = q_net(test_obs).numpy()
    expected = test_obs[:, :1] + np.arange(2)[None]
    assert first > 0.2 and np.mean(np.abs(predicted - expected)) < 0.1


def test_two_replicas_take_the_same_steps_as_one():
    one = distribute.make_strategy("default")
    two = distribute.make_strategy("mirrored", devices=2)
    assert two.num_replicas_in_sync == 2
    q_a, t_a, opt_a = networks(one)
    weights = (q_a.get_weights(), t_a.get_weights())
    q_b, t_b, opt_b = networks(two, weights)
    batches = random_batch(5, 32, seed=3)
    loss_a = float(dqn.make_train_round(q_a, t_a, opt_a, one, 0.99, True)(*batches))
    loss_b = float(dqn.make_train_round(q_b, t_b, opt_b, two, 0.99, True)(*batches))
    assert loss_a == pytest.approx(loss_b, rel=1e-5)
    for a, b in zip(q_a.get_weights(), q_b.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert not np.allclose(q_a.get_weights()[0], weights[0][0])


def test_epsilon_schedule_and_replay_buffer(tmp_path):
    config = dqn.Config(eps_start=1.0, eps_end=0.1, eps_decay_steps=100)
    assert [dqn.epsilon_at(s, config) for s in (0, 50, 100, 1000)] == pytest.approx([1.0, 0.55, 0.1, 0.1])
    buffer = dqn.ReplayBuffer(3, 2)
    for i in range(5):
        buffer.add([i, i], i % 2, float(i), [i + 1, i + 1], i == 4)
    assert buffer.size == 3 and buffer.position == 2
    assert sorted(buffer.rewards.tolist()) == [2.0, 3.0, 4.0] and buffer.terminated.tolist() == [0, 1, 0]
    obs, actions, rewards, next_obs, terminated = buffer.sample(np.random.default_rng(0), 4, 5)
    assert obs.shape == (4, 5, 2) and actions.shape == rewards.shape == terminated.shape == (4, 5)
    np.testing.assert_array_equal(obs[..., 0], rewards)
    np.testing.assert_array_equal(next_obs[..., 0], rewards + 1)
    buffer.to_variables()
    copy = dqn.ReplayBuffer(3, 2)
    path = tf.train.Checkpoint(b=buffer.state).write(str(tmp_path / "buffer"))
    tf.train.Checkpoint(b=copy.state).read(path).assert_consumed()
    copy.from_variables()
    assert (copy.size, copy.position) == (3, 2)
    np.testing.assert_array_equal(copy.obs, buffer.obs)


def _q_weights(run_dir):
    agent = dqn.Agent(dqn.Config(hidden=16), distribute.make_strategy("default"))
    training.Run(run_dir, resume=True).restore({"model": agent.q_net})
    return agent.q_net.get_weights()


def test_cli_two_replicas_and_resume_repeat_one_uninterrupted_replica(capsys, tmp_path):
    # "one": 2 epochs on one replica. "two": 1 epoch on 2 mirrored replicas, then resumed for the 2nd.
    assert dqn.main(["train", *TINY, "--strategy", "default", "--run-dir", "one"]) == 0
    one = last_json(capsys)
    mirrored = ["--devices", "2", "--strategy", "mirrored", "--run-dir", "two"]
    assert dqn.main(["train", *TINY, "--epochs", "1", *mirrored]) == 0
    assert dqn.main(["train", "--resume", "--epochs", "2", *mirrored]) == 0
    two = last_json(capsys)
    assert json.loads((tmp_path / "two" / "config.json").read_text())["replicas"] == 2
    assert one["env_steps"] == two["env_steps"] == 600
    m1 = json.loads((tmp_path / "one" / "metrics.json").read_text())
    m2 = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert len(m1) == len(m2) == 2
    for a, b in zip(m1, m2):
        keys = ("episodes", "episode_return", "val_return", "env_steps")
        assert [a[k] for k in keys] == [b[k] for k in keys]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    for a, b in zip(_q_weights(tmp_path / "one"), _q_weights(tmp_path / "two")):
        np.testing.assert_allclose(a, b, atol=1e-5)
    for name in ("model.keras", "curves.png", "metrics.json"):
        assert (tmp_path / "one" / name).stat().st_size > 0
    assert list((tmp_path / "one" / "tensorboard" / "episodes").glob("events.*"))
    assert dqn.main(["evaluate", "--run-dir", "one", "--episodes", "3"]) == 0
    result = last_json(capsys)
    assert result["episodes"] == 3 and result["mean_return"] >= 8 and (tmp_path / "one" / "eval_returns.png").exists()


@pytest.mark.parametrize("argv,code,message", [
    (["train", "--gamma", "1.5"], 2, "--gamma must be in [0, 1], got 1.5"),
    (["train", "--env", "Pendulum-v1"], 2, "DQN needs Box observations and Discrete actions"),
    (["train", "--env", "NoSuchEnv-v0"], 2, "--env 'NoSuchEnv-v0'"),
    (["train", "--learning-starts", "10"], 2, "--learning-starts (10) must be at least --batch-size (64)"),
    (["train", "--batch-size", "33", "--devices", "2", "--strategy", "mirrored"], 2,
     "--batch-size 33 does not split evenly over 2 replicas"),
    (["evaluate"], 2, "no run found under runs/dqn"),
])
def test_bad_input_one_line(argv, code, message, capsys):
    assert dqn.main(argv) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


@pytest.mark.slow
def test_default_budget_solves_cartpole(capsys):
    """The default budget (100k environment steps) must reach a mean return >= 475 over 20 episodes."""
    assert dqn.main(["train", "--run-dir", "full"]) == 0
    capsys.readouterr()
    assert dqn.main(["evaluate", "--run-dir", "full", "--episodes", "20"]) == 0
    result = last_json(capsys)
    print(result)
    assert result["episodes"] == 20 and result["mean_return"] >= 475


def test_predict_gives_the_kept_networks_greedy_action_and_q_values(capsys, tmp_path):
    """predict --observation: the Q-values of the kept (best-validation) network, the one model.keras holds and
    `load` returns, and their argmax; the Python API gives the same."""
    assert dqn.main(["train", *TINY, "--epochs", "1", "--run-dir", "p"]) == 0
    capsys.readouterr()
    model = dqn.load(str(tmp_path / "p"))
    observations = np.array([[0.1, 0.0, -0.2, 0.3], [-0.05, 0.4, 0.02, -0.5], [0.0, 0.0, 0.0, 0.0]], np.float32)
    expected = model.predict(observations, verbose=0)
    for obs, q in zip(observations, expected):
        text = ",".join(repr(float(v)) for v in obs)
        assert dqn.main(["predict", "--run-dir", "p", f"--observation={text}"]) == 0
        answer = last_json(capsys)
        np.testing.assert_allclose(answer["q_values"], q, rtol=1e-5, atol=1e-6)
        assert answer["action"] == int(np.argmax(q))
    api = dqn.predict(str(tmp_path / "p"), observation=(0.1, 0.0, -0.2, 0.3))
    assert api["action"] == int(np.argmax(expected[0]))
    np.testing.assert_allclose(api["q_values"], expected[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("observation,message", [
    ("0.1,0,-0.2", "--observation has 3 values; CartPole-v1 observations have 4"),
    ("0.1,x,0,0", "--observation: must be comma-separated numbers"),
    ("0.1,nan,0,0", "--observation: must be comma-separated numbers"),
])
def test_predict_refuses_a_wrong_observation(observation, message, capsys, tmp_path):
    from tests.cli_helpers import tree_digest

    assert dqn.main(["train", *TINY, "--epochs", "1", "--run-dir", "p"]) == 0
    before = tree_digest(tmp_path / "p")
    capsys.readouterr()
    code = dqn.main(["predict", "--run-dir", "p", f"--observation={observation}"]) if "has 3" in message else None
    if code is None:
        with pytest.raises(SystemExit) as exit_info:
            dqn.main(["predict", "--run-dir", "p", f"--observation={observation}"])
        code = exit_info.value.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert tree_digest(tmp_path / "p") == before
