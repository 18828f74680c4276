"""SB3 policies' thread counts: SAC's steps choose theirs (rlhf_core.threads), PPO's keep torch's."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

from rlhf_core.policy.sb3 import SB3Agent, SB3Config, make_training_env


def _learn(algo: str, steps: int, **kwargs) -> tuple[SB3Agent, list[int]]:
    cfg = SB3Config(algo, steps, eval_every=10_000, kwargs=kwargs)
    agent = SB3Agent.build(cfg, make_training_env(lambda: gym.make("Pendulum-v1"), cfg))
    seen: list[int] = []
    agent.learn(on_step=lambda done, total, metrics: seen.append(torch.get_num_threads()))
    return agent, seen


@pytest.fixture
def two_threads(monkeypatch):
    monkeypatch.setenv("RLHF_DEVICE", "cpu")
    monkeypatch.delenv("RLHF_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_sac_steps_choose_between_torchs_count_and_half_and_put_it_back(two_threads, monkeypatch):
    agent, seen = _learn("sac", 600, learning_starts=100, batch_size=64)
    chooser = agent.last_threads
    assert chooser.options == (2, 1) and sum(chooser.used.values()) >= 1  # units of >= 0.25 s of steps
    assert set(seen) <= {1, 2} and torch.get_num_threads() == 2
    monkeypatch.setenv("RLHF_THREADS", "1")
    agent, seen = _learn("sac", 300, learning_starts=100, batch_size=64)
    assert agent.last_threads.options == (1,) and set(seen) == {1} and torch.get_num_threads() == 2


def test_ppo_trains_in_bursts_and_keeps_torchs_count(two_threads):
    agent, seen = _learn("ppo", 256, n_steps=128, batch_size=64, n_epochs=2)
    assert agent.last_threads.options == (2,) and set(seen) == {2}


def test_sac_steps_whose_two_threads_do_not_get_their_cores_try_one(two_threads, monkeypatch):
    import time

    monkeypatch.setattr(time, "process_time", time.perf_counter)  # CPU time = wall time: half of two cores
    agent, seen = _learn("sac", 1_500, learning_starts=100, batch_size=64)
    assert agent.last_threads.used[1] >= 1 and 1 in seen  # a probe of one thread (kept where faster)
    assert torch.get_num_threads() == 2
