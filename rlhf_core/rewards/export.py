"""Trajectory reward models as plain PyTorch programs: ``torch.export.load(path).module()``.

A studio reward model needs the studio to run: its inputs are built from observations by
:func:`~rlhf_core.rewards.preferences.step_inputs` (a frozen image encoder's features for
pixels), and policies see it normalised on the project's labeled clips
(:class:`~rlhf_core.rewards.learned.LearnedReward`). :func:`export_program` traces that whole
path, encoder included, into one ``torch.export`` program of

    reward = program(obs, action, next_obs)      # (N,) float32, as the studio's policies see it

for a batch of N transitions of any size; loading it needs ``torch`` and nothing else (no
class definitions, no pickle of code). The same folder keeps the studio's own
``config.json`` + ``model.safetensors`` (the weights, for inspection or fine-tuning).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlhf_core.backbones.registry import ObservationFeatures
from rlhf_core.errors import InvalidInputError
from rlhf_core.rewards.learned import LearnedReward
from rlhf_core.rewards.preferences import FeatureSpec

PROGRAM_FILE = "reward.pt2"


class TransitionReward(nn.Module):
    """(obs, action, next_obs) -> the normalised learned reward of each transition, (N,)."""

    def __init__(self, reward: LearnedReward) -> None:
        super().__init__()
        spec = reward.model.spec
        self.features = ObservationFeatures(spec.encoder if spec.pixels else None)
        self.head = reward.model.torch_head()
        self.n_actions = spec.n_actions
        self.continuous = spec.continuous
        if spec.continuous:
            assert spec.action_low is not None and spec.action_high is not None
            self.register_buffer("low", torch.tensor(spec.action_low, dtype=torch.float32))
            self.register_buffer("high", torch.tensor(spec.action_high, dtype=torch.float32))
        self.mean, self.std = float(reward.mean), float(reward.std)

    def forward(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        f, f_next = self.features(obs), self.features(next_obs)
        ones = torch.ones_like(f[:, :1])
        parts = [f, f_next - f, ones, torch.zeros_like(ones)]
        if self.n_actions is not None:
            if self.continuous:
                span = torch.clamp(self.high - self.low, min=1e-8)
                a = action.reshape(action.shape[0], -1).float()
                parts.append(torch.clamp(2.0 * (a - self.low) / span - 1.0, -1.0, 1.0))
            else:
                parts.append(F.one_hot(action.reshape(-1).long(), self.n_actions).float())
        raw = self.head(torch.cat(parts, dim=-1))
        return (raw - self.mean) / self.std


def example_inputs(spec: FeatureSpec, n: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs of the right shapes and types (random): what the program takes."""
    gen = torch.Generator().manual_seed(0)
    if spec.pixels:
        obs = torch.randint(0, 256, (n, *spec.obs_shape), generator=gen, dtype=torch.uint8)
        nxt = torch.randint(0, 256, (n, *spec.obs_shape), generator=gen, dtype=torch.uint8)
    else:
        obs = torch.randn((n, *spec.obs_shape), generator=gen)
        nxt = torch.randn((n, *spec.obs_shape), generator=gen)
    if spec.continuous:
        action = torch.rand((n, spec.n_actions or 1), generator=gen) * 2 - 1
    else:
        action = torch.randint(0, spec.n_actions or 2, (n,), generator=gen)
    return obs, action, nxt


def export_program(reward: LearnedReward, path: Path) -> dict[str, Any]:
    """Trace ``reward`` (model, features, normalisation) into a ``torch.export`` program at
    ``path``; returns a description of its inputs for the model card."""
    spec = reward.model.spec
    if not hasattr(reward.model, "torch_head"):
        raise InvalidInputError(
            f"a {reward.model.kind} reward model cannot be exported as a PyTorch program yet; its weights are in "
            "model.safetensors (export an ensemble or bt model for a program)"
        )
    module = TransitionReward(reward).eval()
    args = example_inputs(spec)
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    shapes = ({0: batch}, {0: batch}, {0: batch})
    with torch.no_grad():
        program = torch.export.export(module, args, dynamic_shapes=shapes)
    torch.export.save(program, str(path))
    obs_dtype = "uint8" if spec.pixels else "float32"
    if spec.n_actions is None:
        action = "any tensor of N rows (this reward ignores the action)"
    elif spec.continuous:
        action = f"float32 (N, {spec.n_actions}), in [{list(spec.action_low or ())}, {list(spec.action_high or ())}]"
    else:
        action = f"int64 (N,), in 0..{spec.n_actions - 1}"
    return {
        "obs": f"{obs_dtype} (N, {', '.join(map(str, spec.obs_shape))})",
        "action": action,
        "next_obs": f"{obs_dtype} (N, {', '.join(map(str, spec.obs_shape))})",
        "output": "float32 (N,): the reward normalised as the studio's policies see it, (raw - mean) / std",
        "normalisation": {"mean": reward.mean, "std": reward.std},
        "example": [t.tolist() if t.numel() <= 64 else None for t in args],
    }


def check_program(reward: LearnedReward, path: Path, atol: float = 1e-4) -> float:
    """Reload the program at ``path`` and compare it with the studio's rewards on random inputs;
    returns the largest difference (InvalidInputError above ``atol``)."""
    program = torch.export.load(str(path)).module()
    obs, action, nxt = example_inputs(reward.model.spec, n=5)
    with torch.no_grad():
        got = program(obs, action, nxt).numpy()
    want = reward(obs.numpy(), action.numpy(), nxt.numpy())
    diff = float(np.max(np.abs(got - want)))
    if not diff <= atol:
        raise InvalidInputError(f"the exported program differs from the studio's rewards by {diff:.2e}; not written")
    return diff
