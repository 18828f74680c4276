"""Issue 4's library pieces: encoder registry, frozen features, batched learned rewards, fast acting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rlhf_core.dqn import DQNAgent, DQNConfig, preset_for, vector_features
from rlhf_core.encoders import FrozenEncoder, get_encoder, resnet_weights_path
from rlhf_core.envs import make_env, success_fn
from rlhf_core.errors import EncoderUnavailableError
from rlhf_core.source_encoder import SourceTaskConfig, collect_frames, load_source_encoder, train_source_encoder

SMALL_SOURCE = SourceTaskConfig(env_id="MiniGrid-Empty-8x8-v0", frames=300, epochs=2, channels=(8, 8), seed=1)


@pytest.fixture(scope="module")
def source_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("encoder") / "minigrid8.safetensors"
    result = train_source_encoder(SMALL_SOURCE, out)
    assert result.features_dim == 8 * 16
    assert 0.0 <= result.direction_accuracy <= 1.0
    return out


def test_missing_resnet_weights_name_the_file_and_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    with pytest.raises(EncoderUnavailableError) as info:
        get_encoder("resnet18")
    message = str(info.value)
    expected = tmp_path / "torch-home" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert str(expected) in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert "resnet18:/path/to/" in message
    with pytest.raises(EncoderUnavailableError, match="weights not found at .*nowhere.pth"):
        resnet_weights_path("resnet50", str(tmp_path / "nowhere.pth"))


def test_unknown_encoder_lists_the_known_ones():
    with pytest.raises(EncoderUnavailableError, match="efficientnet-lite0.*source:FILE"):
        get_encoder("vgg-imaginary")


def test_source_encoder_features_are_identical_with_and_without_the_cache(source_file: Path):
    frames, positions, directions = collect_frames(SMALL_SOURCE)
    assert frames.shape[1:] == (64, 64, 3) and positions.min() >= 0 and positions.max() <= 1
    assert set(directions.tolist()) <= {0, 1, 2, 3}
    enc = load_source_encoder(source_file)
    batch = frames[:40]
    first = enc.encode(batch)
    assert enc.stats.misses == len({f.tobytes() for f in batch}) and enc.stats.hits == 40 - enc.stats.misses
    again = enc.encode(batch)  # every one from the cache
    assert enc.stats.hits >= 40
    fresh = load_source_encoder(source_file)._forward(batch)  # no cache involved
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(first, fresh, rtol=1e-5, atol=1e-6)
    assert not enc.module.training and not any(p.requires_grad for p in enc.module.parameters())


def test_source_encoder_transfers_to_another_layout(source_file: Path):
    """Trained on 8x8 frames (64 px), applied to the 6x6 demo room (48 px, resized)."""
    enc = get_encoder(f"source:{source_file}")
    env = make_env("MiniGrid-Empty-Random-6x6-v0", render=False)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (48, 48, 3)
    feats = enc.encode(obs[None])
    assert feats.shape == (1, enc.features_dim) and np.isfinite(feats).all()


def test_missing_source_encoder_says_how_to_make_one(tmp_path: Path):
    with pytest.raises(EncoderUnavailableError, match="rlhf train-encoder"):
        get_encoder(f"source:{tmp_path / 'missing.safetensors'}")


def test_dqn_on_frozen_features_moves_the_head_and_not_the_encoder(source_file: Path):
    enc = load_source_encoder(source_file)
    frozen_before = {k: v.clone() for k, v in enc.module.state_dict().items()}
    cfg = preset_for("MiniGrid-Empty-Random-6x6-v0").replace(total_steps=600, learning_starts=200, eval_every=0)
    agent = DQNAgent(cfg, enc.features_dim, 7, enc.encode)
    head_before = [p.detach().clone() for p in agent.q.parameters()]
    agent.learn(make_env("MiniGrid-Empty-Random-6x6-v0", render=False))
    for k, v in enc.module.state_dict().items():
        torch.testing.assert_close(v, frozen_before[k], rtol=0, atol=0)
    moved = [not torch.equal(a, b.detach()) for a, b in zip(head_before, agent.q.parameters(), strict=True)]
    assert all(moved)
    assert enc.stats.hit_rate > 0.5  # a 6x6 room has few distinct frames
    x = enc.encode(make_env("MiniGrid-Empty-Random-6x6-v0", render=False).reset(seed=3)[0][None])
    np.testing.assert_array_equal(agent.greedy(x), agent.q(torch.from_numpy(x)).argmax(dim=1).numpy())


def test_numpy_acting_matches_the_torch_network():
    agent = DQNAgent(DQNConfig(hidden=(32, 32)), 4, 3, vector_features)
    x = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    expected = agent.q(torch.from_numpy(x)).argmax(dim=1).numpy()
    np.testing.assert_array_equal(agent.greedy(x), expected)
    with torch.no_grad():  # the NumPy views follow in-place updates of the weights
        for p in agent.q.parameters():
            p.mul_(-1.5)
    np.testing.assert_array_equal(agent.greedy(x), agent.q(torch.from_numpy(x)).argmax(dim=1).numpy())


class CountingReward:
    """A learned-reward stand-in: reward = -|pole angle|, counting calls and batch sizes."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def __call__(self, obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        self.batches.append(len(obs))
        return (1.0 - np.abs(next_obs[:, 2]) * 5).astype(np.float32)


def test_learned_rewards_are_computed_in_batches_per_training_round():
    reward = CountingReward()
    cfg = DQNConfig(total_steps=1_024, train_freq=64, gradient_steps=8, learning_starts=256, eval_every=0)
    DQNAgent(cfg, 4, 2, vector_features).learn(make_env("CartPole-v1", render=False), reward_fn=reward)
    assert reward.batches == [64] * 16  # one call per round, covering every transition once


def test_evaluation_reports_success_and_learned_return():
    env_id = "MiniGrid-Empty-Random-6x6-v0"
    enc = get_encoder("efficientnet-lite0")
    agent = DQNAgent(DQNConfig(hidden=(16,)), enc.features_dim, 7, enc.encode)
    calls: list[int] = []

    def step_reward(obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        calls.append(len(obs))
        return np.full(len(obs), 0.5, np.float32)

    ev = agent.evaluate(make_env(env_id, render=False), 2, reward_fn=step_reward, success_fn=success_fn(env_id))
    assert len(ev.returns) == 2 and ev.successes is not None and ev.learned_returns is not None
    assert calls == ev.lengths  # one batched call per episode
    assert ev.learned_returns == pytest.approx([0.5 * n for n in ev.lengths])
    assert ev.success_rate == pytest.approx(np.mean([r > 0 for r in ev.returns]))
    assert success_fn("CartPole-v1") is None


def test_checkpoint_round_trip(tmp_path: Path):
    agent = DQNAgent(DQNConfig(hidden=(16,), seed=4), 4, 2, vector_features)
    agent.save(tmp_path / "ckpt", {"env_id": "CartPole-v1"})
    loaded = DQNAgent.load(tmp_path / "ckpt", vector_features)
    x = np.random.default_rng(1).normal(size=(20, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded.greedy(x), agent.greedy(x))
    assert loaded.config == agent.config


def test_frozen_encoder_type_is_shared():
    assert isinstance(get_encoder("efficientnet-lite0"), FrozenEncoder)
    assert get_encoder("efficientnet-lite0") is get_encoder("efficientnet-lite0")
