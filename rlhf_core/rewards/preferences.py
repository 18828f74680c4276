"""Segments, preferences between them, and the per-step inputs of reward models.

A preference is a float: P(segment A preferred) = 1, 0, or 0.5 for equal. "Can't tell"
and skips carry no preference and never reach these types.

Per-step reward inputs describe a *transition*: the observation before the step, the change
to the observation after it, and whether the step happened (``valid``) or is padding after
the episode ended (an absorbing state with a reward of its own). Transitions, not states,
let a model express progress (the MiniGrid oracle rewards getting closer to the goal).
A state-action reward model (``FeatureSpec.n_actions`` set) also sees the action taken at
each step, one-hot for a discrete action and scaled to [-1, 1] by its bounds for a
continuous one: a preference about *how* the agent acts can then be learned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlhf_core.backbones.registry import canonical_name, get_encoder

PREF_VALUES = (0.0, 0.5, 1.0)
#: The forms a per-step reward can take (``FeatureSpec.form``).
REWARD_FORMS = ("transition", "potential")


@dataclass(frozen=True)
class Segments:
    """M fixed-length segments of L steps."""

    obs: np.ndarray
    """(M, L + 1, *obs_shape): the observation before each step, then the one after the last."""
    valid: np.ndarray
    """(M, L) bool: the step happened (False: padding after the episode ended)."""
    actions: np.ndarray | None = None
    """(M, L) int: the discrete action of each step, or (M, L, D) float: the continuous one (any
    value on padding); None when unknown."""

    def __post_init__(self) -> None:
        if self.valid.ndim != 2 or self.obs.shape[:2] != (self.valid.shape[0], self.valid.shape[1] + 1):
            raise ValueError(
                f"obs {self.obs.shape} must be (M, L + 1, ...) for valid {self.valid.shape} of shape (M, L)"
            )
        if self.actions is not None and self.actions.shape[:2] != self.valid.shape:
            raise ValueError(f"actions {self.actions.shape} must have the shape of valid {self.valid.shape}")

    @property
    def count(self) -> int:
        return int(self.valid.shape[0])

    @property
    def length(self) -> int:
        return int(self.valid.shape[1])

    @property
    def pixels(self) -> bool:
        return self.obs.ndim == 5 and self.obs.shape[-1] == 3 and self.obs.dtype == np.uint8

    def subset(self, index: np.ndarray) -> Segments:
        return Segments(self.obs[index], self.valid[index], None if self.actions is None else self.actions[index])


def check_weight(weight: np.ndarray | None, n: int) -> None:
    """Per-comparison weights are (n,) and non-negative (or None: all 1)."""
    if weight is not None and (weight.shape != (n,) or not np.all(weight >= 0)):
        raise ValueError(f"weight must be ({n},) and non-negative, got {weight.shape}")


@dataclass(frozen=True)
class Preferences:
    """N comparisons between segments: ``pref[i]`` = P(segments[a[i]] preferred to segments[b[i]])."""

    segments: Segments
    a: np.ndarray
    """(N,) int index of the first segment of each comparison."""
    b: np.ndarray
    """(N,) int index of the second."""
    pref: np.ndarray
    """(N,) float in {0, 0.5, 1}."""
    weight: np.ndarray | None = None
    """(N,) non-negative weight of each comparison in the loss (None: all 1), e.g. its
    annotator's agreement with the others."""

    def __post_init__(self) -> None:
        n = len(self.pref)
        check_weight(self.weight, n)
        if self.a.shape != (n,) or self.b.shape != (n,):
            raise ValueError(f"a {self.a.shape} and b {self.b.shape} must both have shape ({n},) like pref")
        bad = ~np.isin(self.pref, PREF_VALUES)
        if bad.any():
            raise ValueError(f"pref must be 0, 0.5 or 1; comparison {int(np.argmax(bad))} has {self.pref[bad][0]}")
        if n and (min(self.a.min(), self.b.min()) < 0 or max(self.a.max(), self.b.max()) >= self.segments.count):
            raise ValueError(f"segment indices must lie in [0, {self.segments.count})")

    def __len__(self) -> int:
        return len(self.pref)

    def take(self, index: np.ndarray) -> Preferences:
        """The comparisons at ``index`` (segments are shared, not copied)."""
        weight = None if self.weight is None else self.weight[index]
        return Preferences(self.segments, self.a[index], self.b[index], self.pref[index], weight)

    def weights(self) -> np.ndarray:
        """Each comparison's weight (ones when none were given), (N,) float32."""
        return np.ones(len(self.pref), np.float32) if self.weight is None else self.weight.astype(np.float32)


@dataclass(frozen=True)
class FeatureSpec:
    """How observations become per-step inputs; saved with a model so it can be rebuilt."""

    obs_shape: tuple[int, ...]
    pixels: bool
    encoder: str | None = None
    """Name of the frozen encoder for pixel observations (``rlhf_core.backbones.registry``)."""
    n_actions: int | None = None
    """Number of discrete actions (or a continuous action's dimension) when the reward also sees
    the action (state-action); None: the reward sees observations only."""
    form: str = "transition"
    """'transition': the reward is any function of a step's inputs (the observation, its change,
    the action). 'potential': r = Phi(s') - Phi(s) + c (plus a term for the action), a
    learned potential Phi of the observation: a path's return is the rise of Phi along it, so
    no loop of steps earns anything and a policy cannot farm the reward by circling (the
    MiniGrid oracle's progress reward has exactly this form)."""
    action_low: tuple[float, ...] | None = None
    """A continuous action's lower bounds (None: discrete actions)."""
    action_high: tuple[float, ...] | None = None
    """A continuous action's upper bounds."""

    def __post_init__(self) -> None:
        if self.n_actions is not None and self.n_actions < 1:
            raise ValueError(f"n_actions must be at least 1, got {self.n_actions}")
        if (self.action_low is None) != (self.action_high is None):
            raise ValueError("a continuous action needs both its lower and its upper bounds")
        if self.action_low is not None and len(self.action_low) != self.n_actions:
            raise ValueError(f"{len(self.action_low)} action bounds for an action of {self.n_actions} values")
        if self.form not in REWARD_FORMS:
            raise ValueError(f"form must be one of {', '.join(REWARD_FORMS)}, got {self.form!r}")

    @property
    def continuous(self) -> bool:
        """The reward sees a continuous action (a float vector), not a discrete one."""
        return self.action_low is not None

    @classmethod
    def for_segments(
        cls,
        segments: Segments,
        encoder: str | None = None,
        n_actions: int | None = None,
        form: str = "transition",
        action_bounds: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
    ) -> FeatureSpec:
        """The spec of ``segments``; pixels use ``encoder`` (default efficientnet-lite0), stored with
        any file path made absolute so the saved model loads from any working folder;
        ``n_actions`` makes it a state-action reward (the segments must carry their actions),
        of a continuous action within ``action_bounds`` (low, high) when given."""
        shape = tuple(int(s) for s in segments.obs.shape[2:])
        name = canonical_name(encoder or "efficientnet-lite0")
        if n_actions is not None and segments.actions is None:
            raise ValueError("a state-action reward needs segments with their actions")
        low, high = action_bounds if action_bounds is not None and n_actions is not None else (None, None)
        return cls(shape, segments.pixels, name if segments.pixels else None, n_actions, form, low, high)

    def to_json(self) -> dict:
        return {
            "obs_shape": list(self.obs_shape),
            "pixels": self.pixels,
            "encoder": self.encoder,
            "n_actions": self.n_actions,
            "form": self.form,
            "action_low": None if self.action_low is None else list(self.action_low),
            "action_high": None if self.action_high is None else list(self.action_high),
        }

    @classmethod
    def from_json(cls, data: dict) -> FeatureSpec:
        return cls(
            tuple(data["obs_shape"]),
            bool(data["pixels"]),
            data.get("encoder"),
            data.get("n_actions"),
            data.get("form", "transition"),
            None if data.get("action_low") is None else tuple(data["action_low"]),
            None if data.get("action_high") is None else tuple(data["action_high"]),
        )


def observation_features(spec: FeatureSpec, obs: np.ndarray) -> np.ndarray:
    """Per-observation features (..., F): encoder features for pixels, flattened floats otherwise."""
    lead = obs.shape[: obs.ndim - len(spec.obs_shape)]
    flat = obs.reshape(-1, *spec.obs_shape)
    if spec.pixels:
        assert spec.encoder is not None
        feats = get_encoder(spec.encoder).encode(flat)
    else:
        feats = flat.reshape(len(flat), -1).astype(np.float32)
    return feats.reshape(*lead, feats.shape[-1])


def step_inputs(spec: FeatureSpec, segments: Segments) -> np.ndarray:
    """Per-step reward inputs (M, L, 2F + 2 [+ A]): [valid*f(s), valid*(f(s') - f(s)), valid,
    1 - valid], and for a state-action reward valid*onehot(a) over the A actions, or for a
    continuous action valid*a scaled from its bounds to [-1, 1]."""
    feats = observation_features(spec, segments.obs)  # (M, L + 1, F)
    valid = segments.valid[..., None].astype(np.float32)  # (M, L, 1)
    now, delta = feats[:, :-1], feats[:, 1:] - feats[:, :-1]
    parts = [now * valid, delta * valid, valid, 1.0 - valid]
    if spec.n_actions is not None:
        if segments.actions is None:
            raise ValueError("this reward model takes the action of each step, but the segments carry none")
        if spec.continuous:
            assert spec.action_low is not None and spec.action_high is not None
            low, high = np.asarray(spec.action_low, np.float32), np.asarray(spec.action_high, np.float32)
            acts = np.asarray(segments.actions, np.float32).reshape(*segments.valid.shape, -1)
            if acts.shape[-1] != spec.n_actions:
                raise ValueError(f"actions have {acts.shape[-1]} values, this reward model takes {spec.n_actions}")
            scaled = np.clip(2.0 * (acts - low) / np.maximum(high - low, 1e-8) - 1.0, -1.0, 1.0)
            parts.append(scaled * valid)
            return np.concatenate(parts, axis=-1).astype(np.float32)
        actions = np.where(segments.valid, segments.actions, 0)  # padding: any action, masked below
        if actions.min(initial=0) < 0 or actions.max(initial=0) >= spec.n_actions:
            raise ValueError(f"actions must lie in [0, {spec.n_actions}), got {actions.min()}..{actions.max()}")
        parts.append(np.eye(spec.n_actions, dtype=np.float32)[actions] * valid)  # (M, L, A)
    return np.concatenate(parts, axis=-1).astype(np.float32)
