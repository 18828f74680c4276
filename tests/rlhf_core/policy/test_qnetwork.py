"""The Q-network's one definition: its function, the NumPy copy for acting, the TD target, old checkpoints."""

from __future__ import annotations

import numpy as np
import torch

from rlhf_core.policy.qnetwork import QNetwork, mlp_forward, numpy_q_values, td_target


def test_double_dqn_target_uses_online_argmax_valued_by_the_target_net():
    rewards = torch.tensor([1.0, 1.0])
    terminated = torch.tensor([0.0, 1.0])
    online = torch.tensor([[0.0, 5.0], [3.0, 0.0]])  # picks action 1, then action 0
    target = torch.tensor([[10.0, 2.0], [7.0, 9.0]])
    got = td_target(rewards, terminated, target, gamma=0.5, next_q_online=online)
    assert got.tolist() == [1.0 + 0.5 * 2.0, 1.0]  # terminal: no bootstrap from the next state
    absorbing = td_target(rewards, terminated, target, gamma=0.5, absorbing_value=-4.0, next_q_online=online)
    assert absorbing.tolist() == [2.0, 1.0 + 0.5 * -4.0]  # terminal: the absorbing state's value
    vanilla = td_target(rewards, terminated, target, gamma=0.5)
    assert vanilla.tolist() == [1.0 + 0.5 * 10.0, 1.0]  # the target network's best value


def test_numpy_q_values_equal_the_torch_function_and_follow_updates_in_place():
    torch.manual_seed(0)
    q = QNetwork(6, 3, (16, 8))
    views = q.numpy_views()
    x = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    np.testing.assert_allclose(numpy_q_values(views, x.copy()), q(torch.from_numpy(x)).detach().numpy(), rtol=1e-5)
    with torch.no_grad():
        q.layers[0].weight.mul_(2.0)  # an optimizer step writes in place: the views see it
    np.testing.assert_allclose(
        numpy_q_values(views, x.copy()), mlp_forward(q.linear_params(), torch.from_numpy(x)).detach().numpy(), rtol=1e-5
    )


def test_a_checkpoint_of_the_sequential_head_loads_into_the_same_function():
    torch.manual_seed(1)
    old = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    state = {f"net.{k}": v for k, v in old.state_dict().items()}  # keys net.0.*, net.2.*
    q = QNetwork(4, 2, (8,))
    q.load_state_dict(state)
    x = torch.randn(7, 4)
    torch.testing.assert_close(q(x), old(x))
