"""The compiled update: the same steps as the plain one, its one door, and its fallback."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rlhf_core.policy import compiled as compiled_module
from rlhf_core.policy.compiled import SavedGraphs, fused_updates
from rlhf_core.policy.dqn import DQNAgent, DQNConfig, update_mode, vector_features
from rlhf_core.policy.qnetwork import ReplayBatch


def _random_batches(n: int, seed: int = 0) -> list[ReplayBatch]:
    g = torch.Generator().manual_seed(seed)
    return [
        ReplayBatch(
            torch.randn(32, 4, generator=g),
            torch.randint(0, 2, (32,), generator=g),
            torch.randn(32, generator=g),
            torch.randn(32, 4, generator=g),
            (torch.rand(32, generator=g) < 0.2).float(),
        )
        for _ in range(n)
    ]


def _stacked(batches: list[ReplayBatch]) -> ReplayBatch:
    return ReplayBatch(*(torch.stack(parts) for parts in zip(*batches, strict=True)))


@pytest.mark.parametrize(("double_q", "bf16"), [(True, False), (False, False), (False, True)])
def test_compiled_updates_match_ordinary_updates(double_q, bf16):
    cfg = DQNConfig(hidden=(16, 16), learning_rate=1e-2, max_grad_norm=0.5, double_q=double_q, seed=4, bf16=bf16)
    eager = DQNAgent(cfg, 4, 2, vector_features)
    compiled = DQNAgent(cfg.replace(compile=True), 4, 2, vector_features)
    assert compiled.q.hidden_dtype == eager.q.hidden_dtype == (torch.bfloat16 if bf16 else None)
    start = [p.detach().clone() for p in eager.q.parameters()]
    batches = _random_batches(13)
    with update_mode(1):
        # a round of 12 steps: two compiled calls of 6 (the largest divisor up to STEPS_PER_CALL);
        # the absorbing value and clipping (max_grad_norm 0.5) are both exercised
        a = eager.update_round(_stacked(batches[:12]), absorbing_value=-2.0)
        b = compiled.update_round(_stacked(batches[:12]), absorbing_value=-2.0)
        assert compiled._compiled.sizes == {6}
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)  # every step's loss
        if not double_q:  # a single step (its own compiled graph) continues from the same state
            torch.testing.assert_close(eager.update(batches[12]), compiled.update(batches[12]), rtol=1e-5, atol=1e-6)
            assert compiled._compiled.sizes == {1, 6}
    assert compiled._compiled is not None, "the compiled path fell back to eager"
    for e, c, s in zip(eager.q.parameters(), compiled.q.parameters(), start, strict=True):
        torch.testing.assert_close(e, c, rtol=1e-4, atol=1e-5)
        assert not torch.equal(c, s)  # it did learn
    steps = 12 if double_q else 13
    for e, c in zip(eager.q.parameters(), compiled.q.parameters(), strict=True):
        state = compiled.optimizer.state[c]  # the optimizer's own Adam state was used, and counted
        assert float(state["step"]) == steps
        for moment in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(state[moment], eager.optimizer.state[e][moment], rtol=1e-4, atol=1e-7)
    # acting reads the same storage the compiled step updates
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_array_equal(compiled.greedy(x), compiled.q(torch.from_numpy(x)).argmax(1).numpy())


def test_a_step_that_cannot_compile_falls_back_to_ordinary_updates(caplog):
    agent = DQNAgent(DQNConfig(hidden=(8,), compile=True), 4, 2, vector_features)

    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    agent._compiled.fn = broken
    before = [p.detach().clone() for p in agent.q.parameters()]
    with caplog.at_level(logging.WARNING, logger="rlhf_core.policy.compiled"):
        agent.update(_random_batches(1)[0])
    assert "no C++ compiler" in caplog.text and "ordinary updates" in caplog.text
    assert agent._compiled is None
    assert any(not torch.equal(p, b) for p, b in zip(agent.q.parameters(), before, strict=True))
    # the ordinary step counted itself in the state the compiled path had set up
    assert all(float(agent.optimizer.state[p]["step"]) == 1 for p in agent.q.parameters())


@pytest.mark.parametrize("wrong", ["output bias", "losses", "moments", "step counts"])
def test_a_graph_that_computes_other_numbers_is_caught_undone_and_left_for_ordinary_updates(wrong, caplog):
    # what a graph from a compile cache written for other vector instructions does (AVX-512 kernels
    # built for AVX2 skip half of every vector): it runs without an error and returns wrong numbers
    cfg = DQNConfig(hidden=(16, 16), learning_rate=1e-2, max_grad_norm=0.5, seed=4)
    plain = DQNAgent(cfg, 4, 2, vector_features)
    agent = DQNAgent(cfg.replace(compile=True), 4, 2, vector_features)

    def miscompiled(params, target_params, exp_avgs, exp_avg_sqs, steps, *args, **kwargs):
        losses = fused_updates(params, target_params, exp_avgs, exp_avg_sqs, steps, *args, **kwargs)
        if wrong == "output bias":  # 2 of the network's 386 weights, beyond what rounding can move them
            params[-1].add_(0.3)  # (Adam's 6 steps of lr 1e-2 move one weight 0.06 at most: 0.12 apart)
        elif wrong == "moments":
            exp_avg_sqs[0].mul_(2)
        elif wrong == "step counts":
            steps.add_(1)
        return losses * 1.5 if wrong == "losses" else losses

    agent._compiled.fn = miscompiled
    batches = _stacked(_random_batches(12))
    with update_mode(1), caplog.at_level(logging.WARNING, logger="rlhf_core.policy.compiled"):
        want = plain.update_round(batches, absorbing_value=-2.0)
        got = agent.update_round(batches, absorbing_value=-2.0)
    assert "compute other numbers than ordinary ones" in caplog.text and "TORCHINDUCTOR_CACHE_DIR" in caplog.text
    assert agent._compiled is None  # ordinary updates from now on
    # the wrong call was undone: the round's 12 steps ran once, the ordinary way, from the same start
    torch.testing.assert_close(got, want)
    for p, q in zip(agent.q.parameters(), plain.q.parameters(), strict=True):
        torch.testing.assert_close(p, q)
        assert float(agent.optimizer.state[p]["step"]) == 12
        for moment in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(agent.optimizer.state[p][moment], plain.optimizer.state[q][moment])


def test_a_one_step_graph_is_checked_on_its_first_calls_and_caught_when_a_later_one_goes_wrong(caplog):
    cfg = DQNConfig(hidden=(16, 16), learning_rate=1e-2, seed=4)
    plain = DQNAgent(cfg, 4, 2, vector_features)
    agent = DQNAgent(cfg.replace(compile=True), 4, 2, vector_features)
    calls = []

    def wrong_from_the_third_call(params, *args, **kwargs):
        calls.append(1)
        losses = fused_updates(params, *args, **kwargs)
        if len(calls) >= 3:
            params[0].mul_(-1)
        return losses

    agent._compiled.fn = wrong_from_the_third_call
    batches = _random_batches(4)
    with update_mode(1), caplog.at_level(logging.WARNING, logger="rlhf_core.policy.compiled"):
        for i, batch in enumerate(batches):
            torch.testing.assert_close(agent.update(batch), plain.update(batch))
            if i == 1:
                assert agent._compiled is not None and agent._compiled.checked == {(1, 1): 2}
    assert len(calls) == 3 and "they differ in the update of weight tensor 0 (16, 4)" in caplog.text
    assert agent._compiled is None
    for p, q in zip(agent.q.parameters(), plain.q.parameters(), strict=True):
        torch.testing.assert_close(p, q)
        assert float(agent.optimizer.state[p]["step"]) == 4


def test_a_failure_after_the_graph_has_run_is_raised_not_hidden():
    agent = DQNAgent(DQNConfig(hidden=(8,), compile=True), 4, 2, vector_features)
    calls = []

    def fails_the_second_time(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("out of memory")
        return fused_updates(*args, **kwargs)  # the first call computes what it should

    agent._compiled.fn = fails_the_second_time
    batch = _random_batches(1)[0]
    agent.update(batch)
    assert agent._compiled is not None and agent._compiled.sizes == {1}
    with pytest.raises(RuntimeError, match="out of memory"):  # steps may have been taken: no rerun
        agent.update(batch)


def test_rounding_that_flips_one_weights_first_adam_step_is_not_taken_for_a_wrong_graph(caplog):
    # Adam's first step moves a weight by about lr whatever its gradient's size, so a gradient of
    # about zero that rounds to the other sign moves that weight up to 2 lr a step apart
    cfg = DQNConfig(hidden=(16, 16), learning_rate=1e-2, seed=4)
    plain = DQNAgent(cfg, 4, 2, vector_features)
    agent = DQNAgent(cfg.replace(compile=True), 4, 2, vector_features)

    def rounded_otherwise(params, *args, **kwargs):
        losses = fused_updates(params, *args, **kwargs)
        params[-1][0].add_(0.9 * 2 * 1e-2 * 6)  # one output bias, 6 steps of lr 1e-2 on the other side
        return losses

    agent._compiled.fn = rounded_otherwise
    batches = _stacked(_random_batches(6))
    with update_mode(1), caplog.at_level(logging.WARNING, logger="rlhf_core.policy.compiled"):
        torch.testing.assert_close(
            agent.update_round(batches, absorbing_value=0.0), plain.update_round(batches, absorbing_value=0.0)
        )
    assert "compute other numbers" not in caplog.text
    assert agent._compiled is not None and agent._compiled.checked == {(6, 1): 6}
    moved = (agent.q.linear_params()[-1] - plain.q.linear_params()[-1]).detach()
    torch.testing.assert_close(moved, torch.tensor([0.108, 0.0]), rtol=0, atol=1e-6)  # the call's numbers were kept


def test_checking_stops_after_eight_steps_of_a_graph(monkeypatch):
    agent = DQNAgent(DQNConfig(hidden=(8,), learning_rate=1e-2, seed=1, compile=True), 4, 2, vector_features)
    compiled = agent._compiled
    checks = []
    real_check = compiled._check

    def counting(*args, **kwargs):
        checks.append(1)
        return real_check(*args, **kwargs)

    monkeypatch.setattr(compiled, "_check", counting)
    with update_mode(1):
        for batch in _random_batches(11):
            agent.update(batch)
        # a round of 16 steps: two calls of 8, the first checked, the second not
        agent.update_round(_stacked(_random_batches(16, seed=1)), absorbing_value=0.0)
        agent.update_round(_stacked(_random_batches(16, seed=2)), absorbing_value=0.0)
    assert compiled.checked == {(1, 1): 8, (8, 1): 8}
    assert len(checks) == 8 + 1
    # another thread count is checked anew (the ordinary compile traces a graph per count; a saved one serves both)
    with update_mode(2):
        agent.update_round(_stacked(_random_batches(16, seed=3)), absorbing_value=0.0)
    assert compiled.checked == {(1, 1): 8, (8, 1): 8, (8, 2): 8} and compiled.graphs == {(1, 1), (8, 1), (8, 2)}
    assert len(checks) == 8 + 2
    assert agent._compiled is compiled and all(
        float(agent.optimizer.state[p]["step"]) == 11 + 48 for p in agent.q.parameters()
    )


def test_the_state_is_restored_when_the_check_itself_fails(monkeypatch):
    agent = DQNAgent(DQNConfig(hidden=(8,), learning_rate=1e-2, seed=1, compile=True), 4, 2, vector_features)
    before = [p.detach().clone() for p in agent.q.parameters()]

    def broken_check(*args, **kwargs):
        raise MemoryError("no room for the uncompiled copy")

    monkeypatch.setattr(agent._compiled, "_check", broken_check)
    with update_mode(1), pytest.raises(MemoryError):
        agent.update_round(_stacked(_random_batches(8)), absorbing_value=0.0)
    for p, b in zip(agent.q.parameters(), before, strict=True):
        torch.testing.assert_close(p, b, rtol=0, atol=0)
        assert float(agent.optimizer.state[p]["step"]) == 0
        assert not agent.optimizer.state[p]["exp_avg"].any()


def test_a_first_call_that_fails_part_way_leaves_no_step_behind(caplog):
    cfg = DQNConfig(hidden=(8,), learning_rate=1e-2, seed=1)
    plain = DQNAgent(cfg, 4, 2, vector_features)
    agent = DQNAgent(cfg.replace(compile=True), 4, 2, vector_features)

    def fails_after_a_step(params, *args, **kwargs):
        params[0].add_(1.0)
        raise RuntimeError("the C++ build failed")

    agent._compiled.fn = fails_after_a_step
    batches = _stacked(_random_batches(4))
    with update_mode(1), caplog.at_level(logging.WARNING, logger="rlhf_core.policy.compiled"):
        torch.testing.assert_close(
            agent.update_round(batches, absorbing_value=0.0), plain.update_round(batches, absorbing_value=0.0)
        )
    assert agent._compiled is None and "the C++ build failed" in caplog.text
    for p, q in zip(agent.q.parameters(), plain.q.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_a_process_that_compiled_many_graphs_still_compiles_a_new_agents(monkeypatch):
    # the ordinary compile, which runs where a graph cannot be compiled ahead of time
    monkeypatch.setattr(SavedGraphs, "_load_or_compile", lambda self, *args: self.jit)
    monkeypatch.setattr(SavedGraphs, "_loaded", {})
    # dynamo counts a function's graphs across every agent of the process and, past its limit
    # (8 by default; 1 here, where a test run has compiled several already), refuses new ones.
    # (config.patch, not monkeypatch: after monkeypatch's undo the setting no longer existed, and
    # every later compile in the process failed on its absence)
    default = torch._dynamo.config.recompile_limit
    with torch._dynamo.config.patch(recompile_limit=1):
        for hidden in ((8,), (12,)):
            agent = DQNAgent(DQNConfig(hidden=hidden, learning_rate=1e-2, seed=1, compile=True), 4, 2, vector_features)
            agent.update(_random_batches(1)[0])
            assert agent._compiled is not None and agent._compiled.sizes == {1}, hidden
    assert torch._dynamo.config.recompile_limit == default


# --- graphs saved between processes ---------------------------------------------------------
# One small graph (one step of a one-layer network) is compiled for the module and copied into
# each test's folder: compiling ahead of time is the expensive part (10-40 s on a fresh cache).

_SMALL = DQNConfig(hidden=(8,), learning_rate=1e-2, max_grad_norm=0.5, seed=4)


@pytest.fixture(scope="module")
def small_graph(tmp_path_factory):
    """The saved file of the small graph, compiled here once."""
    folder = tmp_path_factory.mktemp("graphs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(compiled_module, "saved_graphs_folder", lambda: folder)
        mp.setattr(SavedGraphs, "_loaded", {})
        mp.setattr(SavedGraphs, "_discarded", set())
        mp.setattr(SavedGraphs, "_unsaved", {})
        agent = DQNAgent(_SMALL.replace(compile=True), 4, 2, vector_features)
        with update_mode(1):
            agent.update(_random_batches(1)[0])
        assert agent._compiled is not None
    (saved,) = folder.iterdir()  # the one graph: one step per call, on one thread
    return saved


@pytest.fixture
def graphs_folder(small_graph, tmp_path, monkeypatch):
    """A folder of saved graphs that holds the small graph, and no graph loaded in this process yet."""
    folder = tmp_path / "graphs"
    folder.mkdir()
    (folder / small_graph.name).write_bytes(small_graph.read_bytes())
    monkeypatch.setattr(compiled_module, "saved_graphs_folder", lambda: folder)
    monkeypatch.setattr(SavedGraphs, "_loaded", {})
    monkeypatch.setattr(SavedGraphs, "_discarded", set())
    monkeypatch.setattr(SavedGraphs, "_unsaved", {})
    return folder


def _step(agent: DQNAgent, batch: ReplayBatch) -> torch.Tensor:
    with update_mode(1):
        return agent.update(batch)


def _step_as_plain(agent: DQNAgent, caplog) -> None:
    """One step of ``agent`` (logging captured), which must equal an uncompiled agent's."""
    batch = _random_batches(1)[0]
    with caplog.at_level(logging.INFO, logger="rlhf_core.policy.compiled"):
        got = _step(agent, batch)
    torch.testing.assert_close(got, _step(DQNAgent(_SMALL, 4, 2, vector_features), batch), rtol=1e-5, atol=1e-6)


def _no_compiling(*args, **kwargs):
    raise AssertionError("compiled again")


def _forbid_compiling(agent: DQNAgent) -> None:
    agent._compiled.fn.jit = _no_compiling
    agent._compiled.fn.ahead = SimpleNamespace(aot_compile=_no_compiling)


def test_a_saved_graph_is_loaded_by_a_later_process_instead_of_compiled(graphs_folder):
    batch = _random_batches(1)[0]
    want = _step(DQNAgent(_SMALL, 4, 2, vector_features), batch)
    agent = DQNAgent(_SMALL.replace(compile=True), 4, 2, vector_features)
    _forbid_compiling(agent)
    torch.testing.assert_close(_step(agent, batch), want, rtol=1e-5, atol=1e-6)
    assert agent._compiled is not None and agent._compiled.checked == {(1, 1): 1}  # and checked as any graph
    # the process keeps it: a second agent neither loads nor compiles, on either thread count
    # (the saved graph does not guard on it; the ordinary compile traces a graph per count)
    second = DQNAgent(_SMALL.replace(compile=True), 4, 2, vector_features)
    plain = DQNAgent(_SMALL, 4, 2, vector_features)
    _forbid_compiling(second)
    next(graphs_folder.iterdir()).unlink()
    for threads in (2, 1):
        with update_mode(threads):
            torch.testing.assert_close(second.update(batch), plain.update(batch), rtol=1e-5, atol=1e-6)
    assert second._compiled is not None and second._compiled.checked == {(1, 2): 1, (1, 1): 1}


def test_a_saved_graph_is_not_taken_for_another_shape(graphs_folder):
    saved = set(graphs_folder.iterdir())
    compiled_for = []

    def compile_ahead(example_inputs):  # records the call instead of compiling (10-40 s)
        compiled_for.append(example_inputs)
        raise RuntimeError("not compiled in this test")

    for cfg in (_SMALL.replace(hidden=(12,)), _SMALL.replace(gamma=0.9), _SMALL.replace(double_q=not _SMALL.double_q)):
        agent = DQNAgent(cfg.replace(compile=True), 4, 2, vector_features)
        plain = DQNAgent(cfg, 4, 2, vector_features)
        agent._compiled.fn.jit = fused_updates  # uncompiled, where compiling ahead of time "failed"
        agent._compiled.fn.ahead = SimpleNamespace(aot_compile=compile_ahead)
        batch = _random_batches(1)[0]
        torch.testing.assert_close(_step(agent, batch), _step(plain, batch), rtol=1e-5, atol=1e-6)
    # another width and the other DQN variant are other graphs; gamma is a value the graph receives, not in it
    assert len(compiled_for) == 2 and set(graphs_folder.iterdir()) == saved


def test_a_saved_graph_that_does_not_load_is_compiled_again_and_saved_whole(graphs_folder, small_graph, caplog):
    (saved,) = graphs_folder.iterdir()
    saved.write_bytes(saved.read_bytes()[:1000])  # cut short (a full disk, a copy that stopped)
    agent = DQNAgent(_SMALL.replace(compile=True), 4, 2, vector_features)

    def compile_ahead(example_inputs):  # the compile's result, without the 10-40 s: the intact file
        with small_graph.open("rb") as f:
            return torch.compiler.load_compiled_function(f)

    agent._compiled.fn.ahead = SimpleNamespace(aot_compile=compile_ahead)
    _step_as_plain(agent, caplog)
    assert "did not load" in caplog.text and agent._compiled is not None
    with saved.open("rb") as f:  # saved again, whole
        torch.compiler.load_compiled_function(f)


def test_where_compiling_ahead_of_time_fails_the_graph_is_compiled_as_before_and_not_saved(graphs_folder, caplog):
    for saved in graphs_folder.iterdir():
        saved.unlink()
    calls = []

    def ordinary(*args, **kwargs):  # stands for torch.compile's function (its compiling is tested above)
        calls.append(1)
        return fused_updates(*args, **kwargs)

    def cannot(example_inputs):
        raise RuntimeError("cannot serialize this graph")

    agent = DQNAgent(_SMALL.replace(compile=True), 4, 2, vector_features)
    agent._compiled.fn.jit = ordinary
    agent._compiled.fn.ahead = SimpleNamespace(aot_compile=cannot)
    _step_as_plain(agent, caplog)
    assert "cannot serialize this graph" in caplog.text
    assert agent._compiled is not None and calls == [1] and not list(graphs_folder.iterdir())


def test_a_saved_graph_found_computing_other_numbers_is_deleted(graphs_folder, monkeypatch, caplog):
    # a file saved by a build that computes wrong numbers here (see the AVX2 note above)
    monkeypatch.setattr(compiled_module.CompiledUpdates, "_check", lambda self, *args, **kwargs: "the losses")
    agent = DQNAgent(_SMALL.replace(compile=True), 4, 2, vector_features)
    _forbid_compiling(agent)
    with caplog.at_level(logging.WARNING, logger="rlhf_core.policy.compiled"):
        _step(agent, _random_batches(1)[0])
    assert agent._compiled is None and "compute other numbers" in caplog.text
    assert not list(graphs_folder.iterdir()) and not SavedGraphs._loaded  # the next process compiles afresh
    # and this one compiles it the ordinary way (each agent checks its own first calls)
    later = DQNAgent(_SMALL.replace(compile=True), 4, 2, vector_features)
    calls = []
    later._compiled.fn.jit = lambda *args, **kwargs: calls.append(1) or fused_updates(*args, **kwargs)
    later._compiled.fn.ahead = SimpleNamespace(aot_compile=_no_compiling)
    _step(later, _random_batches(1)[0])
    assert calls == [1]


def test_a_cache_folder_that_cannot_be_written_never_stops_training(small_graph, tmp_path, monkeypatch, caplog):
    blocked = tmp_path / "a file"
    blocked.write_text("not a folder")
    monkeypatch.setattr(compiled_module, "saved_graphs_folder", lambda: blocked / "graphs")
    monkeypatch.setattr(SavedGraphs, "_loaded", {})
    monkeypatch.setattr(SavedGraphs, "_discarded", set())
    monkeypatch.setattr(SavedGraphs, "_unsaved", {})

    def compile_ahead(example_inputs):  # the compile's result, without the 10-40 s
        with small_graph.open("rb") as f:
            return torch.compiler.load_compiled_function(f)

    agent = DQNAgent(_SMALL.replace(compile=True), 4, 2, vector_features)
    agent._compiled.fn.jit = _no_compiling
    agent._compiled.fn.ahead = SimpleNamespace(aot_compile=compile_ahead)
    _step_as_plain(agent, caplog)
    assert agent._compiled is not None and "could not be saved" in caplog.text
    # a graph found wrong cannot be deleted there either: the warning, and ordinary updates
    monkeypatch.setattr(compiled_module.CompiledUpdates, "_check", lambda self, *args, **kwargs: "the losses")
    other = DQNAgent(_SMALL.replace(compile=True), 4, 2, vector_features)
    other._compiled.fn.jit = _no_compiling
    other._compiled.fn.ahead = SimpleNamespace(aot_compile=compile_ahead)
    with caplog.at_level(logging.INFO, logger="rlhf_core.policy.compiled"):
        _step(other, _random_batches(1)[0])
    assert other._compiled is None and "compute other numbers" in caplog.text


def test_a_loaded_graph_whose_guards_refuse_a_call_leaves_it_to_the_ordinary_compile(graphs_folder, monkeypatch):
    def refuses(*args, **kwargs):
        raise RuntimeError("GuardManager check failed, reason: the default device changed")

    monkeypatch.setattr(SavedGraphs, "_load_or_compile", lambda self, *args: refuses)
    calls = []
    agent = DQNAgent(_SMALL.replace(compile=True), 4, 2, vector_features)
    agent._compiled.fn.jit = lambda *args, **kwargs: calls.append(1) or fused_updates(*args, **kwargs)
    batch = _random_batches(1)[0]
    for _ in range(2):
        _step(agent, batch)
    assert agent._compiled is not None and calls == [1, 1]  # and the refusing graph is not tried again


def test_a_graph_compiled_here_is_saved_only_once_a_checked_call_agreed(graphs_folder, small_graph, monkeypatch):
    for saved in graphs_folder.iterdir():
        saved.unlink()

    def compile_ahead(example_inputs):  # the compile's result, without the 10-40 s
        with small_graph.open("rb") as f:
            return torch.compiler.load_compiled_function(f)

    seen_at_check = []
    verdict = "the losses"  # first a graph found wrong, then one found right
    right_check = compiled_module.CompiledUpdates._check

    def check(self, *args, **kwargs):
        seen_at_check.append(sorted(p.name for p in graphs_folder.iterdir()))
        return verdict or right_check(self, *args, **kwargs)

    monkeypatch.setattr(compiled_module.CompiledUpdates, "_check", check)
    wrong = DQNAgent(_SMALL.replace(compile=True), 4, 2, vector_features)
    wrong._compiled.fn.ahead = SimpleNamespace(aot_compile=compile_ahead)
    _step(wrong, _random_batches(1)[0])
    # no other process could have loaded it: it was never written
    assert wrong._compiled is None and seen_at_check == [[]] and not list(graphs_folder.iterdir())

    monkeypatch.setattr(SavedGraphs, "_discarded", set())  # a later process
    verdict = None
    right = DQNAgent(_SMALL.replace(compile=True), 4, 2, vector_features)
    right._compiled.fn.ahead = SimpleNamespace(aot_compile=compile_ahead)
    right._compiled.fn.jit = _no_compiling
    _step(right, _random_batches(1)[0])
    assert seen_at_check == [[], []] and [p.name for p in graphs_folder.iterdir()] == [small_graph.name]
    assert not SavedGraphs._unsaved
