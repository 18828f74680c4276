"""CNN + LoRA (pixels): a reward head on EfficientNet-Lite0 adapted with LoRA (PEFT) instead of
frozen; the CNN runs on each batch, so it trains slower than the cached path."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlhf_core.callbacks import ProgressFn, StopFn, TrainingCancelledError
from rlhf_core.callbacks import never as _never
from rlhf_core.callbacks import quiet as _quiet
from rlhf_core.errors import InvalidInputError
from rlhf_core.rewards.base import CONFIG_FILE, RewardModel, bt_loss
from rlhf_core.rewards.kinds import CNN_LORA
from rlhf_core.rewards.preferences import FeatureSpec, Preferences, Segments


@dataclass(frozen=True)
class CnnLoraConfig:
    """Per-step reward head on a LoRA-adapted pretrained CNN (pixels only)."""

    rank: int = 4
    """LoRA rank of each adapted pointwise convolution."""
    alpha: float = 8.0
    """LoRA alpha (scaling alpha / rank)."""
    hidden: tuple[int, ...] = (64,)
    """Hidden layer sizes of the reward head."""
    epochs: int = 5
    """Passes over the comparisons."""
    batch_size: int = 8
    """Comparisons per gradient step (each brings 2 (L + 1) frames through the CNN)."""
    lr: float = 1e-3
    """AdamW learning rate of the adapters and the head."""
    image_size: int = 64
    """Frames are resized to this square size before the CNN."""
    noise_prob: float = 0.0
    """Probability that a label is random noise (as :class:`EnsembleConfig`)."""
    seed: int = 0
    """Seed of the head's and the adapters' initialisation."""

    def __post_init__(self) -> None:
        if self.rank < 1 or self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise InvalidInputError("rank, epochs, batch_size and lr must be positive")
        if not 32 <= self.image_size <= 512:
            raise InvalidInputError(f"image_size must lie in 32..512, got {self.image_size}")
        if not 0.0 <= self.noise_prob < 1.0:
            raise InvalidInputError(f"noise_prob must lie in [0, 1), got {self.noise_prob}")


class _CnnRewardNet(nn.Module):
    """EfficientNet-Lite0 features of each frame -> per-step transition inputs -> MLP ``reward_head``."""

    def __init__(self, trunk: nn.Module, hidden: tuple[int, ...], image_size: int) -> None:
        super().__init__()
        self.trunk, self.image_size = trunk, image_size
        sizes, layers = [2 * 1280 + 2, *hidden], []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(fan_in, fan_out), nn.LeakyReLU()]
        self.reward_head = nn.Sequential(*layers, nn.Linear(sizes[-1], 1))

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        """(K, H, W, 3) uint8 -> (K, 1280)."""
        x = frames.permute(0, 3, 1, 2).float().div(255.0)
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        return self.trunk.extract_features(x * 2.0 - 1.0).mean(dim=(2, 3))

    def forward(self, frames: torch.Tensor, inverse: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Distinct frames (K, H, W, 3), each step's frame index (M, L + 1), valid (M, L) -> rewards (M, L)."""
        feats = self.features(frames)[inverse]  # (M, L + 1, 1280)
        v = valid.unsqueeze(-1)
        now, delta = feats[:, :-1], feats[:, 1:] - feats[:, :-1]
        x = torch.cat([now * v, delta * v, v, 1.0 - v], dim=-1)  # as preferences.step_inputs
        return self.reward_head(x).squeeze(-1)


def _distinct_frames(obs: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Each distinct frame once (K, H, W, 3) and the index of every (M, L + 1) frame into them."""
    flat = obs.reshape(-1, *obs.shape[2:])
    keys = [f.tobytes() for f in flat]
    first: dict[bytes, int] = {}
    inverse = np.array([first.setdefault(k, len(first)) for k in keys], dtype=np.int64)
    rows = np.empty(len(first), dtype=np.int64)
    rows[inverse] = np.arange(len(flat))
    return torch.from_numpy(flat[rows]), torch.from_numpy(inverse.reshape(obs.shape[:2]))


class CnnLoraBT(RewardModel):
    """Per-step rewards from a pretrained CNN adapted with LoRA (PEFT) instead of frozen.

    The cached-feature path of :class:`EnsembleBT` cannot hold features that change while
    training, so this kind runs the CNN on each batch's distinct frames. LoRA goes on the
    pointwise 1x1 convolutions of EfficientNet-Lite0; BatchNorm keeps its pretrained
    statistics; the base weights never change. Saved in PEFT's format (adapters + head).
    """

    kind = CNN_LORA

    def __init__(self, spec: FeatureSpec, config: CnnLoraConfig | None = None) -> None:
        if not spec.pixels:
            raise InvalidInputError("cnn-lora needs pixel observations; use bt or ensemble for vector observations")
        if spec.n_actions is not None:
            raise InvalidInputError("cnn-lora rewards see frames only; for a state-action reward use bt or ensemble")
        super().__init__(spec)
        self.config = config or CnnLoraConfig()
        self.net: Any = None

    def _build(self) -> Any:
        from peft import LoraConfig, get_peft_model

        from rlhf_core.backbones.vision import CNN_LORA_TARGETS, efficientnet_trunk_for_lora

        cfg = self.config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            net = _CnnRewardNet(efficientnet_trunk_for_lora(), cfg.hidden, cfg.image_size)
            lora = LoraConfig(
                r=cfg.rank, lora_alpha=cfg.alpha, target_modules=CNN_LORA_TARGETS, modules_to_save=["reward_head"]
            )
            return get_peft_model(net, lora)

    def fit(
        self, data: Preferences, *, rng: np.random.Generator, on_step: ProgressFn = _quiet, should_stop: StopFn = _never
    ) -> dict[str, float]:
        cfg = self.config
        net = self._build()
        params = [p for p in net.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=cfg.lr)
        obs, valid = data.segments.obs, torch.from_numpy(data.segments.valid.astype(np.float32))
        pref = torch.from_numpy(data.pref.astype(np.float32))
        weight = torch.from_numpy(data.weights())
        n = len(data)
        steps = int(np.ceil(n / cfg.batch_size))
        net.train()
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()  # pretrained statistics are part of the frozen base
        loss_value = float("nan")
        for epoch in range(cfg.epochs):
            order = rng.permutation(n)
            total = 0.0
            for s in range(steps):
                if should_stop():
                    raise TrainingCancelledError("stopped during training")
                idx = order[s * cfg.batch_size : (s + 1) * cfg.batch_size]
                seg = np.concatenate([data.a[idx], data.b[idx]])  # (2B,)
                frames, inverse = _distinct_frames(obs[seg])
                returns = net(frames, inverse, valid[seg]).sum(-1)  # (2B,)
                loss = bt_loss(returns[: len(idx)], returns[len(idx) :], pref[idx], cfg.noise_prob, weight[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            loss_value = total / n
            on_step(epoch + 1, cfg.epochs, {"loss": loss_value})
        self.net = net.eval()
        return {"train_loss": loss_value}

    @torch.inference_mode()
    def step_rewards(self, segments: Segments) -> np.ndarray:
        if self.net is None:
            raise RuntimeError("the model is not fitted")
        out = []
        for start in range(0, segments.count, 16):
            obs = segments.obs[start : start + 16]
            frames, inverse = _distinct_frames(obs)
            valid = torch.from_numpy(segments.valid[start : start + 16].astype(np.float32))
            out.append(self.net(frames, inverse, valid).numpy())
        return np.concatenate(out).astype(np.float32)

    def _step_rewards_from_inputs(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError("cnn-lora computes its own features: call step_rewards(segments)")

    def _config(self) -> dict[str, Any]:
        return {"config": {**asdict(self.config), "hidden": list(self.config.hidden)}}

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def save(self, folder: Path) -> None:
        """``config.json`` plus PEFT's adapter files (LoRA of the CNN and the reward head)."""
        if self.net is None:
            raise RuntimeError("the model is not fitted")
        folder.mkdir(parents=True, exist_ok=True)
        self.net.save_pretrained(str(folder), save_embedding_layers=False)
        config = {"kind": self.kind, "features": self.spec.to_json(), **self._config()}
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2))

    @classmethod
    def load(cls, folder: Path, spec: FeatureSpec, config: dict) -> CnnLoraBT:
        from peft import PeftModel

        from rlhf_core.backbones.vision import efficientnet_trunk_for_lora

        cfg = config["config"]
        model = cls(spec, CnnLoraConfig(**{**cfg, "hidden": tuple(cfg["hidden"])}))
        c = model.config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            base = _CnnRewardNet(efficientnet_trunk_for_lora(), c.hidden, c.image_size)
        model.net = PeftModel.from_pretrained(base, str(folder)).eval()
        return model
