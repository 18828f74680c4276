"""cnn-lora reward model: LoRA on EfficientNet-Lite0's pointwise convolutions learns a pixel reward,
leaves the base weights as they were, and reloads from PEFT's format to identical rewards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rlhf_core.rewards.cnn_lora import CnnLoraBT, CnnLoraConfig
from rlhf_core.rewards.models import load_reward_model, make_reward_model
from rlhf_core.rewards.preferences import FeatureSpec, Preferences, Segments

pytestmark = pytest.mark.slow  # the CNN runs forward and backward on every batch: ~15-25 s on 2 cores

TINY = CnnLoraConfig(rank=2, alpha=4, hidden=(16,), epochs=3, batch_size=8, lr=3e-3, image_size=32)


def _colour_segments(n: int, length: int, rng: np.random.Generator) -> tuple[Segments, np.ndarray]:
    """Frames whose red level is the reward: red segments are preferred to blue ones."""
    level = rng.uniform(0, 1, n)
    obs = np.zeros((n, length + 1, 24, 24, 3), dtype=np.uint8)
    obs[..., 0] = (level * 255).astype(np.uint8)[:, None, None, None]
    obs[..., 2] = ((1 - level) * 255).astype(np.uint8)[:, None, None, None]
    obs[:, :, 8:16, 8:16, 1] = rng.integers(0, 255, (n, length + 1, 1, 1), dtype=np.uint8)  # a distractor
    return Segments(obs, np.ones((n, length), bool)), level


def _prefs(segments: Segments, level: np.ndarray, n_pairs: int, rng: np.random.Generator) -> Preferences:
    a = rng.integers(0, segments.count, n_pairs)
    b = (a + rng.integers(1, segments.count, n_pairs)) % segments.count
    return Preferences(segments, a, b, (level[a] > level[b]).astype(np.float64))


@pytest.fixture(scope="module")
def fitted() -> dict:
    rng = np.random.default_rng(0)
    segments, level = _colour_segments(16, 2, rng)
    model = make_reward_model("cnn-lora", FeatureSpec.for_segments(segments), **vars(TINY))
    assert isinstance(model, CnnLoraBT)
    train = _prefs(segments, level, 24, rng)
    model.fit(train, rng=rng)
    held_segments, held_level = _colour_segments(12, 2, np.random.default_rng(1))
    return {"model": model, "held": _prefs(held_segments, held_level, 40, np.random.default_rng(2))}


def test_cnn_lora_learns_the_pixel_reward(fitted: dict) -> None:
    held = fitted["held"]
    p = fitted["model"].predict_pref(held)
    assert np.mean((p > 0.5) == (held.pref == 1)) >= 0.8


def test_base_weights_stay_as_pretrained_and_only_adapters_and_head_train(fitted: dict) -> None:
    from rlhf_core.backbones.vision import efficientnet_trunk_for_lora

    net = fitted["model"].net
    pretrained = efficientnet_trunk_for_lora().state_dict()
    trunk = {
        name.split("trunk.", 1)[1].replace("base_layer.", ""): value
        for name, value in net.state_dict().items()
        if "trunk." in name and "lora_" not in name
    }
    assert trunk.keys() == pretrained.keys()
    assert all(torch.equal(trunk[k], pretrained[k]) for k in pretrained), "a base weight or BN statistic changed"
    trainable = [n for n, p in net.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or "modules_to_save" in n for n in trainable)
    assert any("_project_conv" in n for n in trainable) and any("reward_head" in n for n in trainable)
    assert not any("_depthwise_conv" in n for n in trainable)  # pointwise convolutions only
    lora_b = [p for n, p in net.named_parameters() if "lora_B" in n]
    assert any(p.abs().sum() > 0 for p in lora_b)  # B started at zero and moved


def test_save_and_load_reproduce_rewards_exactly(fitted: dict, tmp_path: Path) -> None:
    model, held = fitted["model"], fitted["held"]
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "adapter_model.safetensors").exists()

    loaded = load_reward_model(tmp_path / "m")

    assert isinstance(loaded, CnnLoraBT) and loaded.config == model.config
    np.testing.assert_array_equal(loaded.step_rewards(held.segments), model.step_rewards(held.segments))


def test_cnn_lora_refuses_vector_observations() -> None:
    spec = FeatureSpec((4,), pixels=False)
    with pytest.raises(ValueError, match="cnn-lora needs pixel observations"):
        make_reward_model("cnn-lora", spec)
