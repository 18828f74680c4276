"""Linear Bradley-Terry: scikit-learn logistic regression on phi(A) - phi(B) (phi = summed
per-step features), no intercept, both orders, ties as half weight each way, the
regularisation strength chosen by cross-validation grouped by comparison."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import GroupKFold
from threadpoolctl import threadpool_limits

from rlhf_core.callbacks import ProgressFn, StopFn, TrainingCancelledError
from rlhf_core.callbacks import never as _never
from rlhf_core.callbacks import quiet as _quiet
from rlhf_core.rewards.base import RewardModel, pairwise_rows
from rlhf_core.rewards.kinds import LINEAR
from rlhf_core.rewards.preferences import FeatureSpec, Preferences, Segments


def one_blas_thread() -> threadpool_limits:
    """NumPy's and SciPy's BLAS (each wheel its own OpenBLAS, each with a pool of threads) on one
    thread while the solver runs. lbfgs alternates between them, NumPy for the loss's products
    and SciPy's L-BFGS-B for its own vector updates, and the pool of one spins on the cores while
    the other works: on two cores a fit of 324 rows by 2,562 features took 13.5-14.6 s with
    their two threads each and 0.9-1.2 s with one (0.83-0.87 s with either library alone on
    one; docs/benchmarks.md)."""
    return threadpool_limits(limits=1, user_api="blas")


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
        w = w * data.weights()[groups]  # each comparison's own weight (its annotator's agreement)
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
            with one_blas_thread():
                model.fit(x, y, sample_weight=w)
            self.c_ = float(np.ravel(model.C_)[0])
        else:
            from sklearn.linear_model import LogisticRegression

            model = LogisticRegression(C=1.0, fit_intercept=False, max_iter=self.config.max_iter)
            with one_blas_thread():
                model.fit(x, y, sample_weight=w)
            self.c_ = 1.0
        self.weights = (model.coef_.ravel() / scale).astype(np.float64)
        on_step(1, 1, {"C": self.c_})
        return {"C": self.c_}

    def _step_rewards_from_inputs(self, x: np.ndarray) -> np.ndarray:
        if self.weights is None:
            raise RuntimeError("the model is not fitted")
        return (x.astype(np.float64) @ self.weights).astype(np.float32)

    def torch_head(self) -> torch.nn.Module:
        """Step inputs (N, D) -> reward (N,) as a torch module (for :mod:`rlhf_core.rewards.export`)."""
        if self.weights is None:
            raise RuntimeError("the model is not fitted")
        return _Dot(torch.from_numpy(self.weights.astype(np.float64)))

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


class _Dot(torch.nn.Module):
    """x . w in float64, as :meth:`LinearBT._step_rewards_from_inputs` computes it."""

    def __init__(self, weights: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("weights", weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.double() @ self.weights).float()
