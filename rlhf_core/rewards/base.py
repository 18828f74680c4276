"""What every reward model of segments is: per-step rewards, Bradley-Terry preferences, saving.

P(A preferred to B) = sigmoid(R(A) - R(B)), R = sum of per-step rewards over a segment. The
kinds: :mod:`~rlhf_core.rewards.linear`, :mod:`~rlhf_core.rewards.ensemble`,
:mod:`~rlhf_core.rewards.cnn_lora`; :mod:`~rlhf_core.rewards.models` makes and loads them by
name. All save as safetensors plus a JSON config (never pickle) and reload to identical rewards.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from rlhf_core.callbacks import ProgressFn, StopFn
from rlhf_core.callbacks import never as _never
from rlhf_core.callbacks import quiet as _quiet
from rlhf_core.rewards.preferences import FeatureSpec, Preferences, Segments, step_inputs

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"


class RewardModel(ABC):
    """Per-step rewards learned from preferences."""

    kind: ClassVar[str]

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec

    @abstractmethod
    def fit(
        self, data: Preferences, *, rng: np.random.Generator, on_step: ProgressFn = _quiet, should_stop: StopFn = _never
    ) -> dict[str, float]:
        """Fit on ``data``; returns training metrics. Raises TrainingCancelledError when stopped."""

    @abstractmethod
    def _step_rewards_from_inputs(self, x: np.ndarray) -> np.ndarray:
        """(M, L, D) step inputs -> (M, L) rewards."""

    def inputs(self, segments: Segments) -> np.ndarray:
        """Per-step inputs of ``segments`` (features computed once per distinct observation)."""
        return step_inputs(self.spec, segments)

    def step_rewards(self, segments: Segments) -> np.ndarray:
        """Predicted reward of each step, (M, L)."""
        return self._step_rewards_from_inputs(self.inputs(segments))

    def segment_returns(self, segments: Segments) -> np.ndarray:
        """Predicted return of each segment, (M,)."""
        return self.step_rewards(segments).sum(axis=1)

    def predict_pref(self, data: Preferences) -> np.ndarray:
        """Predicted P(A preferred) of each comparison, (N,)."""
        returns = self.segment_returns(data.segments)
        return sigmoid(returns[data.a] - returns[data.b])

    @abstractmethod
    def _config(self) -> dict[str, Any]: ...

    @abstractmethod
    def _tensors(self) -> dict[str, torch.Tensor]: ...

    def save(self, folder: Path) -> None:
        """Write ``config.json`` and ``model.safetensors`` into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        config = {"kind": self.kind, "features": self.spec.to_json(), **self._config()}
        save_file({k: v.detach().contiguous().cpu() for k, v in self._tensors().items()}, str(folder / WEIGHTS_FILE))
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


def pairwise_rows(diff: np.ndarray, pref: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Logistic-regression rows for comparisons: both orders, ties as half weight each way.

    Each comparison i gives (diff, 1, pref), (diff, 0, 1 - pref), (-diff, 1, 1 - pref) and
    (-diff, 0, pref); rows of weight 0 are dropped. Returns X, y, sample weights and the
    comparison index of each row (for grouped cross-validation).
    """
    n = len(pref)
    x = np.concatenate([diff, diff, -diff, -diff])
    y = np.concatenate([np.ones(n), np.zeros(n), np.ones(n), np.zeros(n)])
    w = np.concatenate([pref, 1 - pref, 1 - pref, pref])
    groups = np.tile(np.arange(n), 4)
    keep = w > 0
    return x[keep], y[keep], w[keep], groups[keep]


def bt_loss(
    r_a: torch.Tensor,
    r_b: torch.Tensor,
    pref: torch.Tensor,
    noise_prob: float = 0.0,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Bradley-Terry loss of segment returns against P(A preferred), with optional label noise;
    ``weight`` makes it the weighted mean over comparisons (the plain mean when all are equal)."""
    logits = r_a - r_b
    if noise_prob == 0.0:
        losses = F.binary_cross_entropy_with_logits(logits, pref, reduction="none")
    else:
        p = (1 - noise_prob) * torch.sigmoid(logits) + noise_prob / 2
        losses = F.binary_cross_entropy(p, pref, reduction="none")
    return weighted_mean(losses, weight)


def weighted_mean(losses: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Per-comparison losses' mean, weighted by ``weight`` (broadcast to them) when given."""
    if weight is None:
        return losses.mean()
    weight = weight.expand_as(losses)
    return (losses * weight).sum() / weight.sum().clamp_min(1e-12)
