"""A CNN trained on a source task, then frozen and reused on another environment.

Transfer learning from a task rather than from ImageNet. The source task: on frames of one
MiniGrid layout (by default the 8x8 empty room), predict where the agent stands (its column
and row as fractions of the grid) and which way it faces. To solve it the network has to
find the agent among walls, floor and goal, which is what a reward head or a Q-head on
another MiniGrid layout needs to see. After training only the convolutional trunk is
kept; :func:`load_source_encoder` wraps it as a :class:`~rlhf_core.backbones.frozen.FrozenEncoder`
(eval mode, no gradients, cached features), the same interface as the ImageNet backbones.
Frames are resized to a fixed input size, so a trunk trained on an 8x8 room (64x64 pixels)
applies to a 6x6 one (48x48).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save
from torch import nn

from rlhf_core.backbones.frozen import FrozenEncoder
from rlhf_core.envs.registry import env_family, make_env
from rlhf_core.errors import EncoderUnavailableError, InvalidInputError
from rlhf_core.fileio import write_bytes_atomic, write_text_atomic


@dataclass(frozen=True)
class SourceTaskConfig:
    """How the source-task encoder is trained."""

    env_id: str = "MiniGrid-Empty-8x8-v0"
    """The source environment (a MiniGrid id)."""
    frames: int = 4_000
    """Frames collected by a random walker; 20% are held out."""
    epochs: int = 6
    """Passes over the training frames."""
    batch_size: int = 128
    """Frames per gradient step."""
    learning_rate: float = 2e-3
    """Adam learning rate."""
    input_size: int = 64
    """Frames are resized to input_size x input_size."""
    channels: tuple[int, ...] = (16, 32, 32)
    """Output channels of the stride-2 convolutions."""
    seed: int = 0
    """Seeds the walker, the split and the network."""

    def __post_init__(self) -> None:
        if env_family(self.env_id) != "minigrid":
            raise InvalidInputError(
                f"the source task needs a MiniGrid environment (agent position labels), got {self.env_id!r}"
            )
        if self.frames < 50 or self.epochs < 1 or self.batch_size < 1 or not self.channels:
            raise InvalidInputError("frames >= 50, epochs >= 1, batch_size >= 1 and at least one channel are required")


class SourceCNN(nn.Module):
    """Stride-2 convolutions and a 4x4 average pool: (B, 3, S, S) -> (B, channels[-1] * 16)."""

    def __init__(self, channels: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = 3
        for c in channels:
            layers += [nn.Conv2d(width, c, kernel_size=3, stride=2, padding=1), nn.ReLU()]
            width = c
        layers += [nn.AdaptiveAvgPool2d(4), nn.Flatten()]
        self.net = nn.Sequential(*layers)
        self.features_dim = width * 16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _to_input(frames: np.ndarray, size: int) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)  # (B, 3, H, W)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x * 2.0 - 1.0


def collect_frames(config: SourceTaskConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames (N, H, W, 3) of a random walker, agent positions (N, 2) in [0, 1] and directions (N,)."""
    env = make_env(config.env_id, render=False)
    rng = np.random.default_rng(config.seed)
    frames, positions, directions = [], [], []
    obs, _ = env.reset(seed=config.seed)
    base = env.unwrapped
    while len(frames) < config.frames:
        frames.append(obs)
        x, y = base.agent_pos  # type: ignore[attr-defined]
        positions.append((x / (base.width - 1), y / (base.height - 1)))  # type: ignore[attr-defined]
        directions.append(int(base.agent_dir))  # type: ignore[attr-defined]
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(3)))  # left, right, forward
        if terminated or truncated:
            obs, _ = env.reset(seed=int(rng.integers(1 << 30)))
    env.close()
    return np.stack(frames), np.asarray(positions, np.float32), np.asarray(directions, np.int64)


@dataclass(frozen=True)
class SourceTaskResult:
    """Held-out quality of the source task."""

    direction_accuracy: float
    position_error_cells: float
    """Mean absolute error of the predicted position, in grid cells."""
    features_dim: int


def train_source_encoder(
    config: SourceTaskConfig,
    out: Path,
    on_step: Callable[[int, int], None] | None = None,
) -> SourceTaskResult:
    """Train the trunk on the source task, save it (safetensors + JSON) at ``out`` and report held-out quality."""
    frames, positions, directions = collect_frames(config)
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(frames))
    n_test = len(frames) // 5
    test, train = order[:n_test], order[n_test:]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        trunk = SourceCNN(config.channels)
        pos_head = nn.Linear(trunk.features_dim, 2)
        dir_head = nn.Linear(trunk.features_dim, 4)
    params = [*trunk.parameters(), *pos_head.parameters(), *dir_head.parameters()]
    optimizer = torch.optim.Adam(params, lr=config.learning_rate)
    x_all = _to_input(frames, config.input_size)
    pos_all, dir_all = torch.from_numpy(positions), torch.from_numpy(directions)
    steps_per_epoch = int(np.ceil(len(train) / config.batch_size))
    total = config.epochs * steps_per_epoch
    step = 0
    for _ in range(config.epochs):
        for batch in np.array_split(rng.permutation(train), steps_per_epoch):
            idx = torch.from_numpy(batch)
            feats = trunk(x_all[idx])
            loss = F.mse_loss(pos_head(feats), pos_all[idx]) * 10.0 + F.cross_entropy(dir_head(feats), dir_all[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if on_step is not None:
                on_step(step, total)
    with torch.inference_mode():
        idx = torch.from_numpy(test)
        feats = trunk(x_all[idx])
        dir_acc = float((dir_head(feats).argmax(1) == dir_all[idx]).float().mean())
        env = make_env(config.env_id, render=False)
        cells = np.array([env.unwrapped.width - 1, env.unwrapped.height - 1], np.float32)  # type: ignore[attr-defined]
        env.close()
        err = float((torch.abs(pos_head(feats) - pos_all[idx]).numpy() * cells).mean())
    result = SourceTaskResult(dir_acc, err, trunk.features_dim)
    write_bytes_atomic(out, save({k: v.contiguous() for k, v in trunk.state_dict().items()}))
    meta = {"config": asdict(config), "result": asdict(result)}
    write_text_atomic(out.with_suffix(".json"), json.dumps(meta, indent=2))
    return result


def load_source_encoder(path: Path) -> FrozenEncoder:
    """The frozen trunk saved by :func:`train_source_encoder`."""
    meta_path = path.with_suffix(".json")
    if not path.is_file() or not meta_path.is_file():
        raise EncoderUnavailableError(
            f"no source-task encoder at {path} (and {meta_path.name} beside it); "
            "train one with `rlhf train-encoder --env MiniGrid-Empty-8x8-v0 -o FILE`"
        )
    try:
        meta = json.loads(meta_path.read_text())
        config = SourceTaskConfig(**{**meta["config"], "channels": tuple(meta["config"]["channels"])})
        trunk = SourceCNN(config.channels)
        trunk.load_state_dict(load_file(str(path)))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:  # not what train-encoder writes
        raise EncoderUnavailableError(
            f"{path} (with {meta_path.name}) is not a source-task encoder ({type(exc).__name__}: {exc}); "
            "train one with `rlhf train-encoder --env MiniGrid-Empty-8x8-v0 -o FILE`"
        ) from exc
    return FrozenEncoder(f"source:{path}", trunk, trunk.features_dim, config.input_size, lambda x: x * 2.0 - 1.0)
