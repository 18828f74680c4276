"""Fixtures of the rlhf_core tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlhf_core.backbones.source import SourceTaskConfig, train_source_encoder

#: A source-task CNN small enough to train in seconds.
SMALL_SOURCE = SourceTaskConfig(env_id="MiniGrid-Empty-8x8-v0", frames=300, epochs=2, channels=(8, 8), seed=1)


@pytest.fixture(scope="session")
def small_source() -> SourceTaskConfig:
    """The configuration :func:`source_file` was trained with."""
    return SMALL_SOURCE


@pytest.fixture(scope="session")
def source_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small source-task encoder, trained once per test run."""
    out = tmp_path_factory.mktemp("encoder") / "minigrid8.safetensors"
    result = train_source_encoder(SMALL_SOURCE, out)
    assert result.features_dim == 8 * 16
    assert result.direction_accuracy > 0.25, result  # four directions: better than guessing
    return out
