"""The bagged ensemble: 3-5 per-step reward networks (MLP on vector observations; for pixels,
a head on frozen pretrained CNN features) trained with ``binary_cross_entropy_with_logits(R_a -
R_b, pref)``, with an optional noise probability; potential-form members learn Phi."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlhf_core.callbacks import ProgressFn, StopFn, TrainingCancelledError
from rlhf_core.callbacks import never as _never
from rlhf_core.callbacks import quiet as _quiet
from rlhf_core.errors import InvalidInputError
from rlhf_core.rewards.base import RewardModel, bt_loss, sigmoid
from rlhf_core.rewards.kinds import ENSEMBLE
from rlhf_core.rewards.preferences import FeatureSpec, Preferences, Segments


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


#: How much faster the action's linear weights of a potential-form ensemble learn (see below).
ACTION_SCALE = 10.0


def _extra_scale(extra_dim: int) -> torch.Tensor:
    """(extra_dim, 1): 1 for the step and padding indicators (the first two), ACTION_SCALE for the action's columns."""
    scale = torch.ones(extra_dim, 1)
    scale[2:] = ACTION_SCALE
    return scale


class PotentialEnsembleNet(EnsembleNet):
    """K per-step rewards of the potential form: r = (Phi(s') - Phi(s)) * valid + w . extra.

    Inputs are :func:`~rlhf_core.rewards.preferences.step_inputs` rows ``[f(s) v, (f(s') - f(s)) v,
    v, 1 - v, onehot(a) v]``; Phi is a batched MLP (the ``EnsembleNet``) of the standardised
    observation features f, and ``extra`` (the step and padding indicators, and any action)
    enters linearly: one reward per step taken, one per step of padding after an episode
    ended, one per action. A loop of steps earns only its ``extra`` terms.

    The action's weights are scaled by :data:`ACTION_SCALE` (``extra_scale``), as if they
    learned that much faster: Adam moves each weight by about the learning rate a step whatever
    its gradient, so one linear weight per action learns as slowly as any single weight of
    Phi's MLP, whose many weights together move its output far faster. Unscaled, on a teacher
    that rewards one action alone (random observations, 300 labels), the action's weights grew
    to about 0.2 in training while Phi fitted the labels by the segments' ends: held-out
    accuracy 0.69-0.80 (3 seeds); scaled by 10: 1.00, 1.00, 0.997. Models saved before the
    scale load with 1 (their weights are the rewards themselves).
    """

    def __init__(self, members: int, in_dim: int, hidden: tuple[int, ...], extra_dim: int) -> None:
        feature_dim = (in_dim - extra_dim) // 2
        if feature_dim < 1 or 2 * feature_dim + extra_dim != in_dim:
            raise ValueError(f"potential inputs of {in_dim} columns cannot hold {extra_dim} extra ones")
        super().__init__(members, feature_dim, hidden)
        self.feature_dim = feature_dim
        self.extra = nn.Parameter(torch.zeros(members, extra_dim, 1))
        self.register_buffer("extra_scale", _extra_scale(extra_dim))

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # weights saved before the action's scale existed are the rewards themselves: scale 1
        state_dict.setdefault(prefix + "extra_scale", torch.ones_like(self.extra_scale))
        super()._load_from_state_dict(state_dict, prefix, *args)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.feature_dim
        now, delta, extra = x[..., :f], x[..., f : 2 * f], x[..., 2 * f :]
        n = x.shape[1]
        phi = super().forward(torch.cat([now, now + delta], dim=1))  # (K, 2N): Phi(s), then Phi(s')
        rise = (phi[:, n:] - phi[:, :n]) * extra[..., 0]  # extra[..., 0] is valid
        return rise + torch.bmm(extra, self.extra * self.extra_scale).squeeze(-1)


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


class _MeanOfMembers(nn.Module):
    """The members' mean reward of (N, D) step inputs, times the calibration scale."""

    def __init__(self, net: EnsembleNet, members: int, scale: float) -> None:
        super().__init__()
        self.net, self.members, self.scale = net, members, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.unsqueeze(0).expand(self.members, -1, -1)).mean(0) * self.scale


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
        self._start: dict[str, torch.Tensor] | None = None

    def continue_from(self, earlier: RewardModel) -> bool:
        """Start the next :meth:`fit` from ``earlier``'s networks (and its input standardisation)
        instead of a fresh initialisation, as Christiano et al. (2017) and PEBBLE keep training
        one reward model as labels arrive. Only an ensemble of the same inputs and shape
        qualifies; returns whether ``earlier`` did (False: the fit starts fresh).

        Where the labels say nothing (the MiniGrid oracle ignores the agent's facing direction),
        a fresh network draws a new extrapolation each time, and a second round's potential
        could rise by several units for a turn beside the goal, where the policy then waits;
        continued, the model keeps what it had there unless new labels move it."""
        if not isinstance(earlier, EnsembleBT) or earlier.net is None or earlier.spec.to_json() != self.spec.to_json():
            return False
        same = (earlier.config.members, earlier.config.hidden) == (self.config.members, self.config.hidden)
        if not same or (self._one_scale(earlier.net) and bool((earlier.net.std != earlier.net.std[0]).any())):
            return False  # ... or a model of image features from before they shared one scale: start anew
        start = {k: v.detach().clone() for k, v in earlier.net.state_dict().items()}
        if "extra_scale" in start:  # a model from before ACTION_SCALE (loaded with scale 1): same rewards, new scale
            scale = _extra_scale(len(start["extra_scale"]))
            start["extra"] = start["extra"] * start["extra_scale"] / scale
            start["extra_scale"] = scale
        self._start = start
        return True

    def _one_scale(self, net: EnsembleNet) -> bool:
        """Whether the potential's inputs are a frozen image encoder's features, which are centred
        per feature but divided by one scale (their mean spread), not each by its own: a feature
        that barely varies on the labeled steps is otherwise magnified until it dominates the
        potential (on DistShift1 a rise of 10 units for one turn, where the policy then waited).
        Vector observations, whose dimensions have units of their own, keep one scale each."""
        return isinstance(net, PotentialEnsembleNet) and self.spec.encoder is not None

    def fit(
        self, data: Preferences, *, rng: np.random.Generator, on_step: ProgressFn = _quiet, should_stop: StopFn = _never
    ) -> dict[str, float]:
        cfg = self.config
        x = torch.from_numpy(self.inputs(data.segments))  # (M, L, D)
        m, length, self.in_dim = x.shape
        with torch.random.fork_rng(devices=[]):  # seeded initialisation without touching the global generator
            torch.manual_seed(cfg.seed)
            net = self._new_net()
        if self._start is not None:  # continue from an earlier model: its weights and its standardisation
            net.load_state_dict(self._start)
        else:
            used = torch.from_numpy(np.unique(np.concatenate([data.a, data.b])))
            flat = x[used].reshape(-1, self.in_dim)
            if isinstance(net, PotentialEnsembleNet):  # standardise the observation features, of steps taken
                flat = flat[flat[:, 2 * net.feature_dim] > 0, : net.feature_dim]
            net.mean.copy_(flat.mean(0))
            std = flat.std(0).clamp_min(1e-4)
            if self._one_scale(net):
                std = torch.full_like(std, float(std.mean()))
            net.std.copy_(std)
        a, b = torch.from_numpy(data.a), torch.from_numpy(data.b)
        pref = torch.from_numpy(data.pref.astype(np.float32))
        weight = torch.from_numpy(data.weights())
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
                loss = bt_loss(returns[:, :batch], returns[:, batch:], pref[idx], cfg.noise_prob, weight[idx]) * k
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

    def torch_head(self) -> nn.Module:
        """Step inputs (N, D) -> reward (N,) as a torch module (for :mod:`rlhf_core.rewards.export`)."""
        if self.net is None:
            raise RuntimeError("the model is not fitted")
        return _MeanOfMembers(copy.deepcopy(self.net), self.config.members, self.scale)

    def member_returns(self, segments: Segments) -> np.ndarray:
        """Each member's predicted segment returns, (K, M): their spread measures doubt."""
        return self.member_step_rewards(self.inputs(segments)).sum(axis=2)

    def member_prefs(self, data: Preferences) -> np.ndarray:
        """Each member's P(A preferred), (K, N)."""
        returns = self.member_returns(data.segments)
        return sigmoid(returns[:, data.a] - returns[:, data.b])

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
