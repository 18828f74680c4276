"""The Q-network's one definition: its function, the NumPy copy for acting, the TD target, old checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlhf_core.policy.qnetwork import QNetwork, mlp_forward, numpy_q_values, td_loss, td_loss_and_grads, td_target


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


@pytest.mark.parametrize(
    ("hidden", "hidden_dtype"), [((16,), None), ((32, 16), None), ((16, 16, 8), None), ((16, 16, 8), torch.bfloat16)]
)
def test_the_written_out_backward_pass_equals_autograd(hidden, hidden_dtype):
    torch.manual_seed(1)
    params = [p.detach() for p in QNetwork(5, 3, hidden).linear_params()]
    features = torch.randn(40, 5) * 3
    actions = torch.randint(0, 3, (40,))
    with torch.no_grad():  # targets both near (quadratic part of Huber) and far (linear part) from Q
        target = mlp_forward(params, features)[torch.arange(40), actions] + torch.linspace(-3, 3, 40)
    expected_grads, expected_loss = torch.func.grad_and_value(td_loss)(params, features, actions, target, hidden_dtype)
    grads, loss = td_loss_and_grads(params, features, actions, target, hidden_dtype)
    torch.testing.assert_close(loss, expected_loss, rtol=0, atol=0)
    assert [g.shape for g in grads] == [p.shape for p in params]
    assert all(g.dtype == torch.float32 for g in grads)
    # float32: the same products in the same order as autograd's, so the same bits
    tolerance = {"rtol": 0.0, "atol": 0.0} if hidden_dtype is None else {"rtol": 2e-2, "atol": 1e-4}
    for got, want in zip(grads, expected_grads, strict=True):
        assert want.abs().max() > 0  # every layer is exercised
        torch.testing.assert_close(got, want, **tolerance)


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


def test_bf16_hidden_layers_round_only_the_hidden_to_hidden_products():
    torch.manual_seed(2)
    q = QNetwork(6, 3, (32, 32))
    x = torch.randn(64, 6) * 50.0  # raw features of any scale enter the float32 first layer
    full, low = mlp_forward(q.linear_params(), x), mlp_forward(q.linear_params(), x, torch.bfloat16)
    assert low.dtype == torch.float32 and not torch.equal(full, low)
    torch.testing.assert_close(low, full, rtol=2e-2, atol=2e-2 * float(full.abs().max()))
    # by hand: float32 first layer, the hidden layer on bfloat16-rounded inputs and weights, float32 last layer
    (w1, b1), (w2, b2), (w3, b3) = ((layer.weight, layer.bias) for layer in q.layers)
    h = torch.relu(x @ w1.T + b1)

    def rounded(t: torch.Tensor) -> torch.Tensor:
        return t.bfloat16().float()

    h = torch.relu(rounded(rounded(h) @ rounded(w2).T + rounded(b2)))  # float32 sums, one rounding
    by_hand = h @ w3.T + b3
    # the same up to the order of the sums before rounding: far closer than float32 is
    assert (low - by_hand).abs().max() < 0.1 * (low - full).abs().max()
    # one hidden layer: no hidden-to-hidden product, float32 throughout
    one = QNetwork(6, 3, (32,))
    assert torch.equal(mlp_forward(one.linear_params(), x), mlp_forward(one.linear_params(), x, torch.bfloat16))


def test_bf16_is_a_choice_off_by_default():
    from rlhf_core.policy.dqn import DQNAgent, DQNConfig, preset_for, vector_features

    assert DQNConfig().bf16 is False and all(not p.bf16 for p in (preset_for("CartPole-v1"), preset_for("MiniGrid-x")))
    assert DQNAgent(DQNConfig(hidden=(8, 8)), 4, 2, vector_features).q.hidden_dtype is None
    on = DQNAgent(DQNConfig(hidden=(8, 8), bf16=True), 4, 2, vector_features)
    assert on.q.hidden_dtype == on.target.hidden_dtype == torch.bfloat16
