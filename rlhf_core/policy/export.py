"""Policies as plain PyTorch programs: ``action = torch.export.load(path).module()(obs)``.

The studio's DQN acts greedily on features of the observation (a frozen image encoder's for
pixels); a stable-baselines3 policy acts through SB3's ``predict``, which rescales a squashed
action to the action space's bounds (or clips an unsquashed one). :func:`export_policy`
traces either, features and rescaling included, into one ``torch.export`` program of a
batch of observations to their deterministic actions, which loads with ``torch`` alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rlhf_core.backbones.registry import ObservationFeatures
from rlhf_core.errors import InvalidInputError

PROGRAM_FILE = "policy.pt2"


class _GreedyQ(nn.Module):
    """obs (N, ...) -> argmax_a Q(features(obs), a), int64 (N,)."""

    def __init__(self, q: nn.Module, encoder: str | None) -> None:
        super().__init__()
        self.features = ObservationFeatures(encoder)
        self.q = q

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.q(self.features(obs)).argmax(dim=-1)


class _SB3Deterministic(nn.Module):
    """obs (N, ...) -> SB3's deterministic action, in the action space's units."""

    def __init__(self, policy: Any, space: Any) -> None:
        super().__init__()
        self.policy = policy
        self.box = hasattr(space, "low")
        if self.box:
            self.register_buffer("low", torch.as_tensor(space.low, dtype=torch.float32))
            self.register_buffer("high", torch.as_tensor(space.high, dtype=torch.float32))
            self.squash = bool(getattr(policy, "squash_output", False))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        action = self.policy._predict(obs.float(), deterministic=True)
        if not self.box:
            return action.reshape(-1).long()
        if self.squash:  # SB3's unscale_action: [-1, 1] -> [low, high]
            return self.low + 0.5 * (action + 1.0) * (self.high - self.low)
        return torch.maximum(torch.minimum(action, self.high), self.low)


def policy_module(agent: Any, encoder: str | None) -> nn.Module:
    """The deterministic policy of a studio DQN agent or an SB3 agent as one torch module."""
    import copy

    if hasattr(agent, "q"):  # rlhf_core.policy.dqn.DQNAgent
        return _GreedyQ(copy.deepcopy(agent.q).cpu().eval(), encoder).eval()
    model = agent.model
    return _SB3Deterministic(copy.deepcopy(model.policy).cpu().eval(), model.action_space).eval()


def example_observations(obs_shape: tuple[int, ...], pixels: bool, n: int = 3) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    if pixels:
        return torch.randint(0, 256, (n, *obs_shape), generator=gen, dtype=torch.uint8)
    return torch.randn((n, *obs_shape), generator=gen)


def export_policy(agent: Any, encoder: str | None, obs_shape: tuple[int, ...], path: Path) -> None:
    """Trace the agent's deterministic policy into a ``torch.export`` program at ``path``."""
    module = policy_module(agent, encoder)
    example = example_observations(obs_shape, encoder is not None)
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    # SB3 builds torch.distributions objects; their argument checks are data-dependent
    # branches that torch.export cannot trace (and the deterministic action never samples).
    validate = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(False)
    try:
        with torch.no_grad():
            program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
    except Exception as exc:  # torch.export names the construct it cannot trace
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInputError(f"this policy cannot be exported as a PyTorch program: {first}") from exc
    finally:
        torch.distributions.Distribution.set_default_validate_args(validate)
    torch.export.save(program, str(path))


def check_policy(
    agent: Any, act: Any, obs_shape: tuple[int, ...], pixels: bool, path: Path, atol: float = 1e-4
) -> float:
    """Reload the program and compare its actions with ``act(obs)`` (the studio's acting path)
    on random observations; returns the largest difference (InvalidInputError above ``atol``)."""
    program = torch.export.load(str(path)).module()
    obs = example_observations(obs_shape, pixels, n=5)
    with torch.no_grad():
        got = program(obs).numpy().astype(np.float64)
    want = np.stack([np.asarray(act(o), dtype=np.float64) for o in obs.numpy()]).reshape(got.shape)
    diff = float(np.max(np.abs(got - want)))
    if not diff <= atol:
        raise InvalidInputError(f"the exported policy acts {diff:.2e} away from the studio's; not written")
    return diff
