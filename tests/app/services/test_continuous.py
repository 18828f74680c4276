"""Continuous control through the studio: a Box-action environment goes demo -> oracle labels ->
reward model -> SAC on the learned reward, and the checkpoint is shown and labeled like a DQN's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from app.cli import cli
from app.config import Settings, Studio
from app.services import policies
from app.services.demo import create_demo_project
from app.services.model_registry import TrainingError
from app.services.rewards import train_reward_model
from app.services.synthetic import label_synthetic
from rlhf_core.envs.behaviours import Behaviour, behaviour_mix
from rlhf_core.envs.episodes import rollout
from rlhf_core.envs.registry import env_info


@pytest.fixture
def studio(tmp_path: Path):
    studio = Studio(Settings.from_env(tmp_path / "data"))
    yield studio
    studio.engine.dispose()


def _random_return(episodes: int = 5) -> float:
    random = next(b for b in behaviour_mix("Pendulum-v1") if b.name == "random")
    rng = np.random.default_rng(0)
    return float(np.mean([rollout("Pendulum-v1", random, seed=10_000 + k, rng=rng, render=False).true_return
                          for k in range(episodes)]))  # fmt: skip


@pytest.mark.slow
def test_pendulum_goes_from_clips_to_a_sac_policy_that_swings_up_on_the_learned_reward(studio: Studio) -> None:
    create_demo_project(studio, "pend", "Pendulum-v1", n_segments=40, n_queries=150, seed=0)
    label_synthetic(studio, "pend", "oracle", 150, seed=0)
    reward = train_reward_model(studio, "pend")
    assert reward.metrics["reward_form"] == "transition"  # the default for continuous control
    assert reward.metrics["val_accuracy"] >= 0.8

    result = policies.train_policy(studio, "pend", "active", algo=None, steps=5_000, seed=0)

    m = result.metrics
    assert m["algo"] == "sac" and m["env_steps"] == 5_000 and m["gradient_steps"] > 0
    baseline = _random_return()
    assert baseline < -900
    assert m["true_return_mean"] > baseline + 400, (m["true_return_mean"], baseline)  # it learned to swing up
    assert [p["step"] for p in result.curve] == [5_000]
    [row] = policies.policy_registry(studio, "pend")
    assert row["algo"] == "sac" and row["true_return_mean"] == m["true_return_mean"]

    # the checkpoint acts, is shown beside a random policy, and its clips go to the labeling queue
    _, agent = policies.load_agent(studio, "pend")
    behaviour = policies.policy_behaviour(agent, "sac")
    assert isinstance(behaviour, Behaviour)
    ep = rollout("Pendulum-v1", behaviour, seed=10_000, rng=np.random.default_rng(0), render=False)
    assert ep.true_return == pytest.approx(
        rollout("Pendulum-v1", behaviour, seed=10_000, rng=np.random.default_rng(1), render=False).true_return
    )  # deterministic
    show = policies.showcase(studio, "pend", seed=3)
    assert show.gif.startswith(b"GIF8") and show.predicted_rewards is not None
    added = policies.rollouts_to_queries(studio, "pend", episodes=2, seed=0)
    assert added.segments == 4 and added.queries >= 4


def test_dqn_is_refused_for_continuous_actions_and_sac_for_discrete_ones(studio: Studio) -> None:
    assert policies.algo_options("Pendulum-v1") == ["sac", "ppo", "td3", "a2c"]
    assert policies.algo_options("CartPole-v1") == ["dqn", "ppo", "a2c"]
    assert policies.algo_options("MiniGrid-Empty-Random-6x6-v0") == ["dqn"]  # pixels: the DQN's frozen CNN
    with pytest.raises(TrainingError, match="continuous actions; DQN chooses among discrete ones: use --algo sac"):
        policies._check_algo("dqn", env_info("Pendulum-v1"))
    with pytest.raises(TrainingError, match="SAC needs continuous actions"):
        policies._check_algo("sac", env_info("CartPole-v1"))


@pytest.mark.slow
def test_the_cli_trains_ppo_on_cartpole_with_the_same_json_fields(tmp_path: Path, monkeypatch) -> None:
    data = str(tmp_path / "data")
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))  # where SB3's default logger makes its folder
    monkeypatch.delenv("SB3_LOGDIR", raising=False)  # ... unless this names another
    run = CliRunner()
    assert (
        run.invoke(
            cli, ["--data-dir", data, "demo", "--env", "CartPole-v1", "--segments", "30", "--queries", "60"]
        ).exit_code
        == 0
    )
    out = run.invoke(
        cli,
        ["--data-dir", data, "train-policy", "--project", "demo", "--reward", "true", "--algo", "ppo", "--steps",
         "2048", "--json"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    import json

    metrics = json.loads(out.output[out.output.index("{") :])
    assert metrics["algo"] == "ppo" and metrics["env_steps"] >= 2048 and metrics["version"] == 1  # whole rollouts
    for key in ("true_return_mean", "env_steps_per_second", "train_seconds", "curve", "labels_used"):
        assert key in metrics
    assert not list((tmp_path / "tmp").glob("SB3-*"))  # no empty SB3-<date> folder left behind per run


def test_a_mujoco_clip_renders_off_screen(tmp_path: Path) -> None:
    from rlhf_core.envs.clips import side_by_side_gif

    info = env_info("HalfCheetah-v5")
    assert info.continuous and info.n_actions == 6 and info.family == "mujoco" and info.render_fps == 20
    gait = behaviour_mix("HalfCheetah-v5")[1]
    ep = rollout("HalfCheetah-v5", gait, seed=0, rng=np.random.default_rng(0), max_steps=30)
    assert ep.frames is not None and ep.frames.shape == (31, 240, 240, 3)
    assert ep.frames.std() > 10  # a picture, not a blank buffer
    assert not np.array_equal(ep.frames[0], ep.frames[-1])  # the robot moved
    valid = np.ones(30, bool)
    gif = side_by_side_gif(ep.frames[:30], valid, ep.frames[1:], valid, fps=info.render_fps)
    assert gif.startswith(b"GIF8")
