"""A personalised reward model: whose preference it is changes the ranking.

Seed slide 11 concatenates an annotator embedding to the item's features and feeds both to
one linear layer. That cannot personalise a Bradley-Terry model: r(x, u) = w.phi(x) + v.e_u,
and in a pair's difference r(a, u) - r(b, u) the annotator's term v.e_u cancels, so every
annotator gets the same ranking. Here the annotator *multiplies* the content instead, a
low-rank factorisation as in LoRe and PReF:

    r_u(x) = (w + d_u) . phi(x)

- ``phi`` is the content tower: a linear map (or, with ``hidden``, a small MLP) from the
  items' features (segment features of trajectories; for text, the principal components of
  frozen MiniLM sentence embeddings plus surface statistics) to ``rank`` dimensions, shared
  by everyone;
- ``w`` is the population's taste (what the pooled model would learn) and ``d_u`` the
  annotator tower: one learned vector per annotator, pulled toward 0 (``user_l2``) so that
  an annotator with few labels stays near the population.

A new annotator is fitted from a few labels without retraining the rest
(:meth:`PersonalRewardModel.add_annotator`): ``phi``, ``w`` and the team's vectors stay
frozen, and the newcomer's taste is fitted as a mix of the tastes the team spans (PReF's
user weights over a basis of preference directions): a logistic regression on a handful of
numbers under a prior as wide as the team's tastes are long (an empirical prior), so ten
labels are enough to tell whose side they take. Scores without an annotator use ``w``: the
population's reward.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rlhf_core.callbacks import ProgressFn, StopFn, TrainingCancelledError
from rlhf_core.errors import InvalidInputError

_WEIGHTS = "personal.safetensors"
_CONFIG = "personal.json"


@dataclass(frozen=True)
class PersonalConfig:
    """Hyper-parameters of the two-tower model."""

    rank: int = 8
    """Dimensions of the taste space (annotator vectors and content features)."""
    hidden: int = 0
    """Width of the content tower's hidden layer; 0 (the default): a linear tower, which
    generalises best from a few hundred labels (see docs/benchmarks.md)."""
    steps: int = 300
    """Full-batch Adam steps."""
    lr: float = 1e-2
    weight_decay: float = 1e-4
    user_l2: float = 1e-2
    """Pull of each annotator's vector toward the population's (per label, averaged)."""
    new_user_prior: float = 1.0
    """Strength of the prior on a new annotator's taste (:meth:`PersonalRewardModel.add_annotator`):
    a Gaussian as wide as the team's tastes are long along each direction (1.0: that width;
    smaller trusts a newcomer's few labels more)."""
    components: int = 8
    """Principal components kept of the features' leading block (sentence embeddings, CNN
    features): a few hundred labels cannot pin down a tower on hundreds of raw dimensions."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rank < 1 or self.hidden < 0 or self.steps < 1 or self.components < 0:
            raise InvalidInputError("rank, hidden and steps must be positive")
        if self.lr <= 0 or self.weight_decay < 0 or self.user_l2 < 0 or self.new_user_prior < 0:
            raise InvalidInputError("lr must be positive; weight_decay, user_l2 and new_user_prior non-negative")


class _Towers(nn.Module):
    def __init__(self, features_dim: int, config: PersonalConfig, n_annotators: int) -> None:
        super().__init__()
        self.content = (
            nn.Sequential(nn.Linear(features_dim, config.hidden), nn.GELU(), nn.Linear(config.hidden, config.rank))
            if config.hidden
            else nn.Linear(features_dim, config.rank)
        )
        self.population = nn.Parameter(torch.randn(config.rank) * 0.1)
        self.annotators = nn.Parameter(torch.zeros(n_annotators, config.rank))

    def taste(self, users: torch.Tensor) -> torch.Tensor:
        """(N, rank) taste vectors; user -1 is the population."""
        offsets = torch.where((users >= 0)[:, None], self.annotators[users.clamp(min=0)], 0.0)
        return self.population[None, :] + offsets


def _taste_span(tastes: torch.Tensor, energy: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """(rank, K) orthonormal directions that hold ``energy`` of the tastes' (M, rank) spread (the
    few distinct tastes of a team, not one direction per person), and the tastes' mean square
    along each (K,), measured from zero (no taste): how long the team's tastes are there."""
    _, sv, vt = torch.linalg.svd(tastes, full_matrices=False)
    share = torch.cumsum(sv**2, 0) / (sv**2).sum().clamp(min=1e-12)
    k = int((share < energy).sum()) + 1
    return vt[:k].T, (sv[:k] ** 2 / len(tastes)).clamp(min=1e-6)


def _bt_loss(margin: torch.Tensor, pref: torch.Tensor) -> torch.Tensor:
    return nn.functional.binary_cross_entropy_with_logits(margin, pref)


class PersonalRewardModel:
    """r_u(x) = (w + d_u) . phi(x); see the module docstring."""

    kind = "personal"

    def __init__(self, features_dim: int, config: PersonalConfig | None = None, *, passthrough: int = 0) -> None:
        if features_dim < 1 or not 0 <= passthrough <= features_dim:
            raise InvalidInputError(f"features_dim must be positive and passthrough within it, got {features_dim}")
        self.features_dim = int(features_dim)
        self.passthrough = int(passthrough)
        """Trailing feature dimensions used as they are (e.g. surface statistics of a text)."""
        self.config = config or PersonalConfig()
        self.annotators: list[str] = []
        self.meta: dict[str, Any] = {}
        """What the caller needs to rebuild the features of new items (saved with the model)."""
        lead = self.features_dim - self.passthrough
        k = self.config.components if 0 < self.config.components < lead else 0
        self.center = np.zeros(lead, np.float32)
        self.basis = np.zeros((k, lead), np.float32)
        """Principal directions of the leading block (k, lead); k = 0 keeps it whole."""
        self.mean = np.zeros(self._reduced_dim, np.float32)
        self.scale = np.ones(self._reduced_dim, np.float32)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            self.towers = _Towers(self._reduced_dim, self.config, 0)

    @property
    def _reduced_dim(self) -> int:
        lead = self.features_dim - self.passthrough
        return (len(self.basis) or lead) + self.passthrough

    def _reduce(self, x: np.ndarray) -> np.ndarray:
        lead = self.features_dim - self.passthrough
        head, tail = x[:, :lead], x[:, lead:]
        if len(self.basis):
            head = (head - self.center) @ self.basis.T
        return np.concatenate([head, tail], axis=1).astype(np.float32)

    # --- inputs ---------------------------------------------------------------------------

    def _x(self, features: np.ndarray) -> torch.Tensor:
        x = np.asarray(features, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.features_dim:
            raise InvalidInputError(f"features must be (N, {self.features_dim}), got {x.shape}")
        return torch.from_numpy((self._reduce(x) - self.mean) / self.scale)

    def _users(self, annotators: Sequence[str | None]) -> torch.Tensor:
        index = {name: i for i, name in enumerate(self.annotators)}
        return torch.tensor([index.get(a, -1) if a is not None else -1 for a in annotators], dtype=torch.long)

    # --- training -------------------------------------------------------------------------

    def fit(
        self,
        features_a: np.ndarray,
        features_b: np.ndarray,
        annotators: Sequence[str],
        pref: np.ndarray,
        *,
        on_step: ProgressFn | None = None,
        should_stop: StopFn | None = None,
    ) -> dict[str, Any]:
        """Fit both towers on labels (pairs of item features, who labeled, P(A preferred))."""
        pref_t = torch.as_tensor(np.asarray(pref, dtype=np.float32))
        if not (len(features_a) == len(features_b) == len(annotators) == len(pref_t)) or len(pref_t) == 0:
            raise InvalidInputError("features, annotators and preferences must have the same, non-zero length")
        both = np.unique(np.concatenate([features_a, features_b]).astype(np.float32), axis=0)
        lead = self.features_dim - self.passthrough
        if len(self.basis):
            self.center = both[:, :lead].mean(axis=0)
            _, _, vt = np.linalg.svd(both[:, :lead] - self.center, full_matrices=False)
            k = min(len(self.basis), len(vt))
            self.basis = np.zeros((len(self.basis), lead), np.float32)
            self.basis[:k] = vt[:k]
        reduced = self._reduce(both)
        self.mean = reduced.mean(axis=0)
        self.scale = reduced.std(axis=0) + 1e-6
        self.annotators = sorted(set(annotators))
        cfg = self.config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.towers = _Towers(self._reduced_dim, cfg, len(self.annotators))
        xa, xb, users = self._x(features_a), self._x(features_b), self._users(annotators)
        opt = torch.optim.AdamW(
            [
                {"params": self.towers.content.parameters(), "weight_decay": cfg.weight_decay},
                {"params": [self.towers.population, self.towers.annotators], "weight_decay": 0.0},
            ],
            lr=cfg.lr,
        )
        losses = []
        self.towers.train()
        for step in range(cfg.steps):
            if should_stop is not None and should_stop():
                raise TrainingCancelledError("personal reward model training cancelled")
            taste = self.towers.taste(users)
            margin = (taste * (self.towers.content(xa) - self.towers.content(xb))).sum(-1)
            loss = _bt_loss(margin, pref_t) + cfg.user_l2 * (self.towers.annotators**2).sum(-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            if on_step is not None:
                on_step(step + 1, cfg.steps)
        self.towers.eval()
        return {"final_loss": losses[-1], "annotators": len(self.annotators)}

    def add_annotator(
        self, name: str, features_a: np.ndarray, features_b: np.ndarray, pref: np.ndarray
    ) -> dict[str, Any]:
        """Fit a new (or refit an existing) annotator's taste from their labels; the content tower
        and every other annotator stay as they are."""
        if not self.annotators:
            raise InvalidInputError("fit the model on a team's labels before adding an annotator")
        pref_t = torch.as_tensor(np.asarray(pref, dtype=np.float32))
        if len(pref_t) == 0:
            raise InvalidInputError(f"{name!r} has no labels to fit their taste from")
        with torch.no_grad():
            diff = self.towers.content(self._x(features_a)) - self.towers.content(self._x(features_b))
            base = self.towers.population.detach().clone()
            # the tastes the team spans: a new person is most likely a mix of them (as in PReF)
            known = self.towers.annotators.detach()
            if name in self.annotators:
                known = known[[i for i, n in enumerate(self.annotators) if n != name]]
            span, spread = _taste_span(torch.cat([base[None, :], base[None, :] + known]))
        # maximum a posteriori under a Gaussian prior on the offset from the population, as wide
        # along each direction as the team's tastes are long there (their root mean square from
        # zero), so a label counts the same whatever scale the content tower learned. Measured
        # from zero, not from the population: a newcomer may want the opposite of the whole team
        # (``detailed`` against ``concise``), which a prior as narrow as the team's spread around
        # its mean forbids (docs/benchmarks.md). The likelihood is a mean over labels: hence 1/n.
        prior = self.config.new_user_prior * 0.5 / len(pref_t)
        coef = torch.zeros(span.shape[1], requires_grad=True)
        opt = torch.optim.LBFGS([coef], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = _bt_loss(diff @ (base + span @ coef), pref_t) + prior * (coef**2 / spread).sum()
            loss.backward()
            return loss

        opt.step(closure)
        offset = span @ coef
        with torch.no_grad():
            rows = self.towers.annotators.detach()
            if name in self.annotators:
                rows[self.annotators.index(name)] = offset.detach()
            else:
                self.annotators.append(name)
                rows = torch.cat([rows, offset.detach()[None, :]])
            self.towers.annotators = nn.Parameter(rows)
        return {"annotator": name, "labels": len(pref_t)}

    # --- prediction -----------------------------------------------------------------------

    @torch.no_grad()
    def scores(self, features: np.ndarray, annotator: str | None = None) -> np.ndarray:
        """Rewards (N,) of items for an annotator (None or unknown: the population)."""
        x = self._x(features)
        taste = self.towers.taste(self._users([annotator] * len(x)))
        return (taste * self.towers.content(x)).sum(-1).numpy().astype(np.float64)

    @torch.no_grad()
    def predict_pref(
        self, features_a: np.ndarray, features_b: np.ndarray, annotators: Sequence[str | None]
    ) -> np.ndarray:
        """P(A preferred) (N,) for each pair as the given annotator would answer."""
        taste = self.towers.taste(self._users(annotators))
        diff = self.towers.content(self._x(features_a)) - self.towers.content(self._x(features_b))
        return torch.sigmoid((taste * diff).sum(-1)).numpy().astype(np.float64)

    # --- persistence ----------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous() for k, v in self.towers.state_dict().items()}
        for name in ("mean", "scale", "center", "basis"):
            tensors[name] = torch.from_numpy(np.ascontiguousarray(getattr(self, name)))
        save_file(tensors, str(folder / _WEIGHTS))
        meta = {
            "kind": self.kind,
            "features_dim": self.features_dim,
            "passthrough": self.passthrough,
            "config": asdict(self.config),
            "annotators": self.annotators,
            "meta": self.meta,
        }
        (folder / _CONFIG).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, folder: Path) -> PersonalRewardModel:
        from safetensors.torch import load_file

        meta = json.loads((folder / _CONFIG).read_text())
        known = {f.name for f in fields(PersonalConfig)}  # a setting an older version saved and this one dropped
        config = PersonalConfig(**{k: v for k, v in meta["config"].items() if k in known})
        model = cls(int(meta["features_dim"]), config, passthrough=int(meta["passthrough"]))
        tensors = load_file(str(folder / _WEIGHTS))
        for name in ("mean", "scale", "center", "basis"):
            setattr(model, name, tensors.pop(name).numpy())
        model.annotators = list(meta["annotators"])
        model.meta = dict(meta.get("meta") or {})
        model.towers = _Towers(model._reduced_dim, model.config, len(model.annotators))
        model.towers.load_state_dict(tensors)
        model.towers.eval()
        return model

    @staticmethod
    def saved_in(folder: Path) -> bool:
        """Whether ``folder`` holds a saved personal model."""
        return (folder / _CONFIG).is_file()


# --- content features -----------------------------------------------------------------------

_WORDS = re.compile(r"\b\w[\w']*\b")
SURFACE_FEATURES = ("log words", "log characters", "sentences", "exclamations per word", "apostrophes per word",
                    "capitals per character")  # fmt: skip


def surface_features(text: str) -> list[float]:
    """Surface statistics of a text that mean-pooled, normalised sentence embeddings lose:
    its length, and the punctuation and capitals of its register."""
    words = max(1, len(_WORDS.findall(text)))
    return [
        float(np.log1p(words)),
        float(np.log1p(len(text))),
        float(len(re.findall(r"[.!?]+", text))),
        text.count("!") / words,
        (text.count("'") + text.count("\u2019")) / words,
        sum(c.isupper() for c in text) / max(1, len(text)),
    ]


def text_features(prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
    """Content features of text items (N, 384 + 6): the frozen MiniLM sentence embedding of
    prompt and response, then the response's :func:`surface_features` (the passthrough block)."""
    from rlhf_core.backbones.text import sentence_embeddings

    embedded = sentence_embeddings([f"{p}\n{r}" for p, r in zip(prompts, responses, strict=True)])
    surface = np.array([surface_features(r) for r in responses], dtype=np.float32).reshape(len(responses), -1)
    return np.concatenate([embedded, surface], axis=1)
