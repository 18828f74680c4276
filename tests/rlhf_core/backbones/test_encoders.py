"""Frozen encoders: the registry, missing weights, the source-task CNN and its cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlhf_core.backbones.frozen import FrozenEncoder
from rlhf_core.backbones.registry import get_encoder
from rlhf_core.backbones.source import SourceTaskConfig, collect_frames, load_source_encoder
from rlhf_core.backbones.vision import resnet_weights_path
from rlhf_core.envs.registry import make_env
from rlhf_core.errors import EncoderUnavailableError


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


def test_source_encoder_features_are_identical_with_and_without_the_cache(
    source_file: Path, small_source: SourceTaskConfig
):
    frames, positions, directions = collect_frames(small_source)
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


def test_frozen_encoder_type_is_shared():
    assert isinstance(get_encoder("efficientnet-lite0"), FrozenEncoder)
    assert get_encoder("efficientnet-lite0") is get_encoder("efficientnet-lite0")
