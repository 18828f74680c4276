"""The Q-network and its TD loss: one definition, shared by the plain update, the compiled
update (:mod:`rlhf_core.policy.compiled`) and acting.

The network is an MLP head on features, ReLU between linear layers. :func:`mlp_forward` is
its function; :class:`QNetwork` only holds the weights; :func:`numpy_q_values` is the same
function in NumPy for acting on one observation without autograd or dispatcher overhead (a
test holds the two equal).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class ReplayBatch(NamedTuple):
    """Sampled transitions (features, not raw observations); stacked minibatches add a leading axis."""

    features: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_features: torch.Tensor
    terminated: torch.Tensor


class QNetwork(nn.Module):
    """The weights of the MLP head: features (B, D) -> Q-values (B, n_actions)."""

    def __init__(
        self, feature_dim: int, n_actions: int, hidden: tuple[int, ...], hidden_dtype: torch.dtype | None = None
    ) -> None:
        super().__init__()
        widths = [feature_dim, *hidden, n_actions]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.hidden_dtype = hidden_dtype
        """The hidden layers' arithmetic (see :func:`mlp_forward`); None: float32 throughout."""
        self.register_load_state_dict_pre_hook(_rename_sequential_keys)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mlp_forward(self.linear_params(), x, self.hidden_dtype)

    def linear_params(self) -> list[torch.Tensor]:
        """Weight and bias of each linear layer in order: [W1, b1, W2, b2, ...]."""
        return [t for layer in self.layers for t in (layer.weight, layer.bias)]

    def numpy_views(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(W^T, b) of each linear layer as NumPy views that follow in-place optimizer updates."""
        return [(layer.weight.detach().numpy().T, layer.bias.detach().numpy()) for layer in self.layers]


def _rename_sequential_keys(module: nn.Module, state_dict: dict, prefix: str, *args: object) -> None:
    """Checkpoints saved before 0.2 held the head as nn.Sequential(Linear, ReLU, ..., Linear):
    their net.0, net.2, ... are layers.0, layers.1, ..."""
    old = sorted({int(k[len(prefix) + 4 :].split(".")[0]) for k in state_dict if k.startswith(prefix + "net.")})
    for new_index, old_index in enumerate(old):
        for part in ("weight", "bias"):
            key = f"{prefix}net.{old_index}.{part}"
            if key in state_dict:
                state_dict[f"{prefix}layers.{new_index}.{part}"] = state_dict.pop(key)


def mlp_forward(params: list[torch.Tensor], x: torch.Tensor, hidden_dtype: torch.dtype | None = None) -> torch.Tensor:
    """The Q-network's function on its :meth:`QNetwork.linear_params`: ReLU between linear layers.

    ``hidden_dtype`` (e.g. ``torch.bfloat16``): the hidden-to-hidden layers multiply in that
    type (their inputs and weights rounded to it, products accumulated in float32 by the CPU's
    kernels, the result rounded to that type and returned as float32), and so do their
    gradients. The first layer (raw observation features, of any scale) and the last (the
    Q-values, which TD targets compare closely) stay in float32, as do the weights and the
    optimizer's state.
    """
    return _forward_layers(params, x, hidden_dtype)[2][-1]


def _forward_layers(
    params: list[torch.Tensor], x: torch.Tensor, hidden_dtype: torch.dtype | None
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """:func:`mlp_forward` layer by layer: each layer's input and weight as it multiplies them
    (``hidden_dtype`` for the hidden-to-hidden layers) and its float32 output (after the ReLU,
    but for the last layer's)."""
    n = len(params) // 2
    inputs, weights, outputs = [], [], []
    for k in range(n):
        w, b = params[2 * k], params[2 * k + 1]
        if hidden_dtype is not None and 0 < k < n - 1:
            x, w = x.to(hidden_dtype), w.to(hidden_dtype)
            z = F.linear(x, w, b.to(hidden_dtype)).float()
        else:
            z = F.linear(x, w, b)
        inputs.append(x)
        weights.append(w)
        x = torch.relu(z) if k < n - 1 else z
        outputs.append(x)
    return inputs, weights, outputs


def numpy_q_values(layers: list[tuple[np.ndarray, np.ndarray]], features: np.ndarray) -> np.ndarray:
    """:func:`mlp_forward` in NumPy on :meth:`QNetwork.numpy_views`: features (N, D) -> (N, A)."""
    x = features
    for k, (w, b) in enumerate(layers):
        x = x @ w + b
        if k < len(layers) - 1:
            np.maximum(x, 0.0, out=x)
    return x


def td_target(
    rewards: torch.Tensor,
    terminated: torch.Tensor,
    next_q_target: torch.Tensor,
    gamma: float | torch.Tensor,
    absorbing_value: float | torch.Tensor = 0.0,
    next_q_online: torch.Tensor | None = None,
) -> torch.Tensor:
    """TD target of a batch: ``r + gamma * V(next)``.

    With ``next_q_online`` (double DQN) the online network picks the next action and the
    target network values it; without, the target network's best value is used (vanilla
    DQN). Terminal transitions bootstrap from the absorbing state's value instead.
    """
    if next_q_online is None:
        next_value = next_q_target.max(dim=1).values
    else:
        next_action = next_q_online.argmax(dim=1, keepdim=True)  # (B, 1)
        next_value = next_q_target.gather(1, next_action).squeeze(1)  # (B,)
    bootstrap = torch.where(terminated.bool(), absorbing_value, next_value)
    return rewards + gamma * bootstrap


def td_loss(
    params: list[torch.Tensor],
    features: torch.Tensor,
    actions: torch.Tensor,
    target: torch.Tensor,
    hidden_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Huber loss between the Q-values of the actions taken and their TD targets."""
    chosen = mlp_forward(params, features, hidden_dtype).gather(1, actions[:, None]).squeeze(1)
    return F.smooth_l1_loss(chosen, target)


def td_loss_and_grads(
    params: list[torch.Tensor],
    features: torch.Tensor,
    actions: torch.Tensor,
    target: torch.Tensor,
    hidden_dtype: torch.dtype | None = None,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """:func:`td_loss` and its gradient with respect to ``params``, the backward pass written out.

    The same products autograd makes (no gradient for the input features), in the same types
    (``hidden_dtype``'s layers multiply their gradients in that type too); a test holds it to
    ``torch.func.grad_and_value(td_loss)``. Written out for the compiled update: tracing a
    ``torch.func`` transform took about half of its compile time (docs/benchmarks.md).
    """
    inputs, weights, outputs = _forward_layers(params, features, hidden_dtype)
    q = outputs[-1]
    chosen = q.gather(1, actions[:, None]).squeeze(1)
    loss = F.smooth_l1_loss(chosen, target)
    # Huber's derivative (beta 1, mean over the batch), scattered to the actions taken
    d_chosen = (chosen - target).clamp(-1.0, 1.0) * (1.0 / chosen.shape[0])  # as aten: times 1/N
    grad = torch.zeros_like(q).scatter(1, actions[:, None], d_chosen[:, None])
    grads: list[torch.Tensor] = [grad] * len(params)
    for k in reversed(range(len(weights))):
        if k < len(weights) - 1:
            grad = torch.where(outputs[k] <= 0, 0.0, grad)  # ReLU's derivative on its output, as aten's
        g = grad.to(inputs[k].dtype)  # a layer's gradients multiply in its own type
        grads[2 * k] = (g.t() @ inputs[k]).float()
        grads[2 * k + 1] = g.sum(0).float()
        if k > 0:
            grad = (g @ weights[k]).float()
    return grads, loss
