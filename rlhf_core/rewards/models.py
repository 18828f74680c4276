"""Reward models of segments by kind name: make a new one, load a saved one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file

from rlhf_core.errors import InvalidInputError
from rlhf_core.rewards.base import CONFIG_FILE, WEIGHTS_FILE, RewardModel
from rlhf_core.rewards.cnn_lora import CnnLoraBT, CnnLoraConfig
from rlhf_core.rewards.ensemble import EnsembleBT, EnsembleConfig
from rlhf_core.rewards.kinds import CNN_LORA, ENSEMBLE, LINEAR
from rlhf_core.rewards.linear import LinearBT, LinearBTConfig
from rlhf_core.rewards.preferences import FeatureSpec

MODEL_KINDS: dict[str, type[RewardModel]] = {LINEAR: LinearBT, ENSEMBLE: EnsembleBT, CNN_LORA: CnnLoraBT}


def make_reward_model(kind: str, spec: FeatureSpec, **config: Any) -> RewardModel:
    """A new, unfitted model of ``kind`` ('bt', 'ensemble' or 'cnn-lora') with config overrides."""
    if kind == LINEAR:
        return LinearBT(spec, LinearBTConfig(**config))
    if kind == ENSEMBLE:
        return EnsembleBT(spec, EnsembleConfig(**config))
    if kind == CNN_LORA:
        if "hidden" in config:
            config = {**config, "hidden": tuple(config["hidden"])}
        return CnnLoraBT(spec, CnnLoraConfig(**config))
    raise InvalidInputError(f"unknown reward model kind {kind!r}; use one of: {', '.join(MODEL_KINDS)}")


def load_reward_model(folder: Path) -> RewardModel:
    """Load a model written by :meth:`RewardModel.save`."""
    config = json.loads((folder / CONFIG_FILE).read_text())
    cls = MODEL_KINDS.get(config.get("kind", ""))
    if cls is None:
        raise ValueError(f"{folder / CONFIG_FILE} has unknown kind {config.get('kind')!r}")
    if cls is CnnLoraBT:
        return CnnLoraBT.load(folder, FeatureSpec.from_json(config["features"]), config)
    tensors = load_file(str(folder / WEIGHTS_FILE))
    return cls._from_saved(FeatureSpec.from_json(config["features"]), config, tensors)  # type: ignore[attr-defined]
