"""Bradley-Terry reward models learned from preferences between segments.

P(A preferred to B) = sigmoid(R(A) - R(B)), R = sum of per-step rewards over a segment.

* :class:`LinearBT`: scikit-learn logistic regression on phi(A) - phi(B) (phi = summed
  per-step features), no intercept, both orders, ties as half weight each way, the
  regularisation strength chosen by cross-validation grouped by comparison.
* :class:`EnsembleBT`: 3-5 bagged per-step reward networks (MLP on vector observations;
  for pixels, a head on frozen pretrained CNN features) trained with
  ``binary_cross_entropy_with_logits(R_a - R_b, pref)``, with an optional noise probability.
* :class:`CnnLoraBT` (pixels): a reward head on EfficientNet-Lite0 adapted with LoRA (PEFT)
  instead of frozen; the CNN runs on each batch, so it trains slower than the cached path.

All save as safetensors plus a JSON config (never pickle) and reload to identical rewards.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import GroupKFold
from torch import nn

from rlhf_core.callbacks import ProgressFn, StopFn, TrainingCancelledError
from rlhf_core.callbacks import never as _never
from rlhf_core.callbacks import quiet as _quiet
from rlhf_core.errors import InvalidInputError
from rlhf_core.rewards.kinds import CNN_LORA, ENSEMBLE, LINEAR
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
        return _sigmoid(returns[data.a] - returns[data.b])

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


def _sigmoid(x: np.ndarray) -> np.ndarray:
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


@dataclass(frozen=True)
class LinearBTConfig:
    """Linear Bradley-Terry."""

    cs: int = 10
    """Number of regularisation strengths tried (log-spaced 1e-4..1e4)."""
    folds: int = 5
    """Cross-validation folds, grouped by comparison so both orders stay together."""
    max_iter: int = 1000
    """Iterations of the lbfgs solver."""


class LinearBT(RewardModel):
    """r(step) = w . x(step), fitted by logistic regression on summed step features."""

    kind = LINEAR

    def __init__(self, spec: FeatureSpec, config: LinearBTConfig | None = None) -> None:
        super().__init__(spec)
        self.config = config or LinearBTConfig()
        self.weights: np.ndarray | None = None
        self.c_: float | None = None

    def inputs(self, segments: Segments) -> np.ndarray:
        x = super().inputs(segments)
        potential = self.spec.form == "potential"
        if potential:  # linear in the change of features only: Phi(s) = w . f(s)
            f = (x.shape[-1] - 2 - (self.spec.n_actions or 0)) // 2
            x[..., :f] = 0.0
        if self.spec.pixels:
            return x
        obs = segments.obs.reshape(segments.count, segments.length + 1, -1).astype(np.float32) ** 2
        quad = obs[:, 1:] - obs[:, :-1] if potential else obs[:, :-1]
        return np.concatenate([x, quad * segments.valid[..., None]], axis=-1)  # quadratic terms for vectors

    def fit(
        self, data: Preferences, *, rng: np.random.Generator, on_step: ProgressFn = _quiet, should_stop: StopFn = _never
    ) -> dict[str, float]:
        if should_stop():
            raise TrainingCancelledError("stopped before fitting")
        phi = self.inputs(data.segments).sum(axis=1)  # (M, D)
        diff = phi[data.a] - phi[data.b]
        scale = np.sqrt((diff**2).mean(axis=0)) + 1e-8  # per-feature RMS, no centring: keeps antisymmetry
        x, y, w, groups = pairwise_rows(diff / scale, data.pref.astype(np.float64))
        folds = min(self.config.folds, len(data))
        if folds >= 2:
            cv = list(GroupKFold(n_splits=folds).split(x, y, groups))
            model = LogisticRegressionCV(
                Cs=self.config.cs,
                cv=cv,
                fit_intercept=False,
                scoring="neg_log_loss",
                l1_ratios=(0.0,),
                use_legacy_attributes=False,
                max_iter=self.config.max_iter,
            )
            model.fit(x, y, sample_weight=w)
            self.c_ = float(np.ravel(model.C_)[0])
        else:
            from sklearn.linear_model import LogisticRegression

            model = LogisticRegression(C=1.0, fit_intercept=False, max_iter=self.config.max_iter)
            model.fit(x, y, sample_weight=w)
            self.c_ = 1.0
        self.weights = (model.coef_.ravel() / scale).astype(np.float64)
        on_step(1, 1, {"C": self.c_})
        return {"C": self.c_}

    def _step_rewards_from_inputs(self, x: np.ndarray) -> np.ndarray:
        if self.weights is None:
            raise RuntimeError("the model is not fitted")
        return (x.astype(np.float64) @ self.weights).astype(np.float32)

    def _config(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "C": self.c_}

    def _tensors(self) -> dict[str, torch.Tensor]:
        assert self.weights is not None
        return {"weights": torch.from_numpy(self.weights)}

    @classmethod
    def _from_saved(cls, spec: FeatureSpec, config: dict, tensors: dict[str, torch.Tensor]) -> LinearBT:
        model = cls(spec, LinearBTConfig(**config["config"]))
        model.weights = tensors["weights"].numpy().astype(np.float64)
        model.c_ = config.get("C")
        return model


@dataclass(frozen=True)
class EnsembleConfig:
    """Neural Bradley-Terry ensemble."""

    members: int = 3
    """Bagged reward networks (3-5)."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of each network."""
    epochs: int = 40
    """Passes over each member's bootstrap sample."""
    batch_size: int = 64
    """Comparisons per gradient step."""
    lr: float = 1e-3
    """Adam learning rate."""
    weight_decay: float = 1e-4
    """L2 penalty (AdamW)."""
    noise_prob: float = 0.0
    """Probability that a label is random noise: P = (1 - e) sigmoid(dR) + e / 2."""
    seed: int = 0
    """Seed of initialisation and batching (data order comes from the rng passed to fit)."""

    def __post_init__(self) -> None:
        if not 1 <= self.members <= 10:
            raise InvalidInputError(f"members must be 1-10 (3-5 recommended), got {self.members}")
        if not 0.0 <= self.noise_prob < 1.0:
            raise InvalidInputError(f"noise_prob must lie in [0, 1), got {self.noise_prob}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise InvalidInputError("epochs, batch_size and lr must be positive")


class EnsembleNet(nn.Module):
    """K per-step reward MLPs evaluated as one batched network (one matmul per layer for all).

    Input (K, N, D) -> standardise -> K independent MLPs -> (K, N). Batching the members
    instead of looping over K small networks cuts the Python and autograd overhead K-fold.
    """

    def __init__(self, members: int, in_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        sizes = [in_dim, *hidden, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            bound = 1.0 / np.sqrt(fan_in)  # nn.Linear's default initialisation, per member
            self.weights.append(nn.Parameter(torch.empty(members, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(members, 1, fan_out).uniform_(-bound, bound)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = (x - self.mean) / self.std  # (K, N, D)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(b, h, w)  # (K, N, out)
            if i < last:
                h = F.leaky_relu(h)
        return h.squeeze(-1)  # (K, N)


class PotentialEnsembleNet(EnsembleNet):
    """K per-step rewards of the potential form: r = (Phi(s') - Phi(s)) * valid + w . extra.

    Inputs are :func:`~rlhf_core.rewards.preferences.step_inputs` rows ``[f(s) v, (f(s') - f(s)) v,
    v, 1 - v, onehot(a) v]``; Phi is a batched MLP (the ``EnsembleNet``) of the standardised
    observation features f, and ``extra`` (the step and padding indicators, and any action)
    enters linearly: one reward per step taken, one per step of padding after an episode
    ended, one per action. A loop of steps earns only its ``extra`` terms.
    """

    def __init__(self, members: int, in_dim: int, hidden: tuple[int, ...], extra_dim: int) -> None:
        feature_dim = (in_dim - extra_dim) // 2
        if feature_dim < 1 or 2 * feature_dim + extra_dim != in_dim:
            raise ValueError(f"potential inputs of {in_dim} columns cannot hold {extra_dim} extra ones")
        super().__init__(members, feature_dim, hidden)
        self.feature_dim = feature_dim
        self.extra = nn.Parameter(torch.zeros(members, extra_dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.feature_dim
        now, delta, extra = x[..., :f], x[..., f : 2 * f], x[..., 2 * f :]
        n = x.shape[1]
        phi = super().forward(torch.cat([now, now + delta], dim=1))  # (K, 2N): Phi(s), then Phi(s')
        rise = (phi[:, n:] - phi[:, :n]) * extra[..., 0]  # extra[..., 0] is valid
        return rise + torch.bmm(extra, self.extra).squeeze(-1)


def bt_loss(r_a: torch.Tensor, r_b: torch.Tensor, pref: torch.Tensor, noise_prob: float = 0.0) -> torch.Tensor:
    """Bradley-Terry loss of segment returns against P(A preferred), with optional label noise."""
    logits = r_a - r_b
    if noise_prob == 0.0:
        return F.binary_cross_entropy_with_logits(logits, pref)
    p = (1 - noise_prob) * torch.sigmoid(logits) + noise_prob / 2
    return F.binary_cross_entropy(p, pref)


def out_of_bag_scale(logits: np.ndarray, pref: np.ndarray, out_of_bag: np.ndarray) -> float:
    """The factor in (0, 1] that makes out-of-bag predictions best calibrated.

    ``logits`` (K, N) are each member's R(A) - R(B), ``out_of_bag`` (K, N) marks the pairs a
    member did not train on. Their pooled log loss under ``scale * logits`` is minimised over
    ``scale`` (Platt scaling without an offset, as temperature scaling does); the scale only
    shrinks, so a model that fits its few labels perfectly but guesses elsewhere predicts
    near 1/2 instead of 0 or 1. 1.0 when no pair is out of bag.
    """
    from scipy.optimize import minimize_scalar

    x, y = logits[out_of_bag].astype(np.float64), np.broadcast_to(pref, logits.shape)[out_of_bag]
    if x.size == 0 or not np.any(x):
        return 1.0

    def loss(log_scale: float) -> float:
        z = np.exp(log_scale) * x
        return float(np.mean(np.logaddexp(0.0, z) - y * z))  # binary cross-entropy with logits

    best = minimize_scalar(loss, bounds=(np.log(1e-3), 0.0), method="bounded")
    return float(np.exp(best.x)) if loss(best.x) < loss(0.0) else 1.0


class EnsembleBT(RewardModel):
    """Bagged per-step reward networks; the reward is the members' mean, scaled so that the
    members' predictions on the pairs left out of their bootstrap samples are calibrated
    (:func:`out_of_bag_scale`): with few labels the model says how little it knows."""

    kind = ENSEMBLE

    def __init__(self, spec: FeatureSpec, config: EnsembleConfig | None = None) -> None:
        super().__init__(spec)
        self.config = config or EnsembleConfig()
        self.net: EnsembleNet | None = None
        self.in_dim: int | None = None
        self.scale = 1.0
        """Calibration factor of every reward (out of bag, fitted after training)."""

    def fit(
        self, data: Preferences, *, rng: np.random.Generator, on_step: ProgressFn = _quiet, should_stop: StopFn = _never
    ) -> dict[str, float]:
        cfg = self.config
        x = torch.from_numpy(self.inputs(data.segments))  # (M, L, D)
        m, length, self.in_dim = x.shape
        with torch.random.fork_rng():  # seeded initialisation without touching the global generator
            torch.manual_seed(cfg.seed)
            net = self._new_net()
        used = torch.from_numpy(np.unique(np.concatenate([data.a, data.b])))
        flat = x[used].reshape(-1, self.in_dim)
        if isinstance(net, PotentialEnsembleNet):  # standardise the observation features, of steps taken
            flat = flat[flat[:, 2 * net.feature_dim] > 0, : net.feature_dim]
        net.mean.copy_(flat.mean(0))
        net.std.copy_(flat.std(0).clamp_min(1e-4))
        a, b = torch.from_numpy(data.a), torch.from_numpy(data.b)
        pref = torch.from_numpy(data.pref.astype(np.float32))
        n, k = len(data), cfg.members
        bags = torch.from_numpy(rng.integers(0, n, size=(k, n)))  # a bootstrap sample per member
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps = max(1, int(np.ceil(n / cfg.batch_size)))
        loss_value = float("nan")
        for epoch in range(cfg.epochs):
            if should_stop():
                raise TrainingCancelledError("stopped during training")
            order = torch.stack([bag[torch.from_numpy(rng.permutation(n))] for bag in bags])  # (K, n)
            total = 0.0
            for s in range(steps):
                idx = order[:, s * cfg.batch_size : (s + 1) * cfg.batch_size]  # (K, B)
                batch = idx.shape[1]
                seg = torch.cat([a[idx], b[idx]], dim=1)  # (K, 2B) segments of each member's pairs
                returns = net(x[seg].reshape(k, 2 * batch * length, -1)).reshape(k, 2 * batch, length).sum(-1)
                loss = bt_loss(returns[:, :batch], returns[:, batch:], pref[idx], cfg.noise_prob) * k
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() / k * batch
            loss_value = total / n
            on_step(epoch + 1, cfg.epochs, {"loss": loss_value})
        self.net = net.eval()
        self.scale = 1.0
        out_of_bag = np.ones((k, n), bool)
        np.put_along_axis(out_of_bag, bags.numpy(), False, axis=1)
        returns = self.member_step_rewards(x.numpy()).sum(axis=2)  # (K, M)
        self.scale = out_of_bag_scale(returns[:, data.a] - returns[:, data.b], data.pref, out_of_bag)
        return {"train_loss": loss_value, "calibration_scale": self.scale}

    def _new_net(self) -> EnsembleNet:
        assert self.in_dim is not None
        cfg = self.config
        if self.spec.form == "potential":
            return PotentialEnsembleNet(cfg.members, self.in_dim, cfg.hidden, 2 + (self.spec.n_actions or 0))
        return EnsembleNet(cfg.members, self.in_dim, cfg.hidden)

    @torch.inference_mode()
    def member_step_rewards(self, x: np.ndarray) -> np.ndarray:
        """Each member's per-step rewards, (K, M, L)."""
        if self.net is None:
            raise RuntimeError("the model is not fitted")
        m, length, d = x.shape
        k = self.config.members
        flat = torch.from_numpy(x).reshape(1, m * length, d).expand(k, -1, -1)
        return self.net(flat).reshape(k, m, length).numpy() * np.float32(self.scale)

    def _step_rewards_from_inputs(self, x: np.ndarray) -> np.ndarray:
        return self.member_step_rewards(x).mean(axis=0)

    def member_returns(self, segments: Segments) -> np.ndarray:
        """Each member's predicted segment returns, (K, M): their spread measures doubt."""
        return self.member_step_rewards(self.inputs(segments)).sum(axis=2)

    def member_prefs(self, data: Preferences) -> np.ndarray:
        """Each member's P(A preferred), (K, N)."""
        returns = self.member_returns(data.segments)
        return _sigmoid(returns[:, data.a] - returns[:, data.b])

    def _config(self) -> dict[str, Any]:
        return {
            "config": {**asdict(self.config), "hidden": list(self.config.hidden)},
            "in_dim": self.in_dim,
            "scale": self.scale,
        }

    def _tensors(self) -> dict[str, torch.Tensor]:
        assert self.net is not None
        return dict(self.net.state_dict())

    @classmethod
    def _from_saved(cls, spec: FeatureSpec, config: dict, tensors: dict[str, torch.Tensor]) -> EnsembleBT:
        cfg = config["config"]
        model = cls(spec, EnsembleConfig(**{**cfg, "hidden": tuple(cfg["hidden"])}))
        model.in_dim = int(config["in_dim"])
        model.scale = float(config.get("scale", 1.0))  # models saved before calibration: 1
        net = model._new_net()
        net.load_state_dict(tensors)
        model.net = net.eval()
        return model


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
        with torch.random.fork_rng():
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
                loss = bt_loss(returns[: len(idx)], returns[len(idx) :], pref[idx], cfg.noise_prob)
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
        with torch.random.fork_rng():
            torch.manual_seed(c.seed)
            base = _CnnRewardNet(efficientnet_trunk_for_lora(), c.hidden, c.image_size)
        model.net = PeftModel.from_pretrained(base, str(folder)).eval()
        return model


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
