"""Device choice: CUDA, then MPS, then the CPU; a forced device that is not there is refused clearly."""

from __future__ import annotations

import pytest
import torch

from rlhf_core.devices import DEVICE_ENV, bf16_pays_off, resolve_device
from rlhf_core.errors import InvalidInputError
from rlhf_core.policy.sb3 import sb3_device


def test_auto_picks_cuda_then_mps_then_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEVICE_ENV, raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device() == torch.device("cuda") and resolve_device("auto") == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_RANK", "1")  # the second process of `accelerate launch`: its own GPU
    assert resolve_device() == torch.device("cuda:1")
    monkeypatch.delenv("LOCAL_RANK")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("rlhf_core.devices._mps_available", lambda: True)
    assert resolve_device() == torch.device("mps")
    monkeypatch.setattr("rlhf_core.devices._mps_available", lambda: False)
    assert resolve_device() == torch.device("cpu")


def test_a_forced_device_comes_from_the_argument_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv(DEVICE_ENV, "CPU")
    assert resolve_device() == torch.device("cpu")
    with pytest.raises(InvalidInputError, match="no CUDA GPU.*use --device cpu"):
        resolve_device("cuda")
    monkeypatch.setenv(DEVICE_ENV, "cuda:1")
    with pytest.raises(InvalidInputError, match="no CUDA GPU"):
        resolve_device()
    with pytest.raises(InvalidInputError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    with pytest.raises(InvalidInputError, match="unsupported device 'meta'"):
        resolve_device("meta")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(InvalidInputError, match="has 1 CUDA GPU"):
        resolve_device("cuda:1")


def test_bf16_follows_the_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    hardware = torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
    assert bf16_pays_off(torch.device("cpu")) == bool(hardware)
    assert bf16_pays_off(torch.device("mps")) is False
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    assert bf16_pays_off(torch.device("cuda")) is True  # Ampere and later
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))
    assert bf16_pays_off(torch.device("cuda:0")) is False  # a V100 only emulates bf16


def test_sb3_runs_ppo_on_the_cpu_and_sac_where_the_device_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEVICE_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert sb3_device("ppo") == "cpu" and sb3_device("a2c") == "cpu"  # SB3's advice for MLP policies
    assert sb3_device("sac") == torch.device("cuda")
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    assert sb3_device("sac") == torch.device("cpu")


def test_the_text_reward_model_trains_and_scores_on_the_device_it_is_given() -> None:
    import numpy as np

    from rlhf_core.rewards.text import TextPreferences, TextRewardConfig, TextRewardModel

    model = TextRewardModel(TextRewardConfig(min_steps=2, max_length=16, rank=2), device="cpu")
    assert {p.device.type for p in model.model.parameters()} == {"cpu"}
    data = TextPreferences.from_lists(
        ["q"] * 4, ["good", "fine", "great", "nice"], ["bad", "awful", "poor", "meh"], [1.0] * 4
    )
    metrics = model.fit(data, rng=np.random.default_rng(0))
    assert metrics["device"] == "cpu" and metrics["steps"] >= 2
    assert model.score(["q"], ["good"]).dtype == np.float32
