"""A training loop's thread count: all where the cores are free, fewer where another process
computes on them (rlhf_core.threads); for the DQN's update rounds, the same network either way."""

from __future__ import annotations

import hashlib
import time

import pytest
import torch

from rlhf_core.envs.registry import make_env
from rlhf_core.errors import InvalidInputError
from rlhf_core.policy.dqn import DQNAgent, preset_for, vector_features
from rlhf_core.threads import THREADS_ENV, AdaptiveThreads, ThreadChooser, configured_threads, proc_stat_idle


class Machine:
    """A two-core machine for a chooser: round times per thread count, our threads' share of
    their cores, and the idle cores a clock reports, all settable as the 'load' changes."""

    def __init__(self, times: dict[int, float], share: float = 1.0, idle_cores: float = 0.0) -> None:
        self.times, self.share, self.idle_cores = times, share, idle_cores
        self.ticks = [0.0, 0.0]  # idle, total
        self.compiled: set[int] = set()

    def clock(self) -> tuple[float, float]:
        return tuple(self.ticks)

    def run(self, chooser: ThreadChooser, rounds: int, *, first_round_extra: float = 1.0) -> list[int]:
        """Rounds as the agent runs them; the first round on a count also pays a compile."""
        counts = []
        for _ in range(rounds):
            n = chooser.threads()
            seconds = self.times[n] + (first_round_extra if n not in self.compiled else 0.0)
            self.compiled.add(n)
            counts.append(n)
            self.ticks[0] += self.idle_cores * seconds * 100
            self.ticks[1] += 2 * seconds * 100
            chooser.record(n, seconds, self.share * n * seconds)
        return counts


def chooser(machine: Machine, **settings) -> ThreadChooser:
    return ThreadChooser((2, 1), idle_clock=machine.clock, cores=2, **settings)


def test_an_idle_machine_runs_every_round_on_two_threads_with_no_probe():
    machine = Machine({2: 0.06, 1: 0.08}, share=1.0, idle_cores=0.0)
    c = chooser(machine)
    assert machine.run(c, 192) == [2] * 192
    assert c.used == {2: 192, 1: 0} and c.switches == 0


def test_beside_another_process_it_moves_to_one_thread_within_a_few_rounds():
    # measured: two trainings side by side took 0.3-0.5 s a round on two threads, 0.1 s on one
    machine = Machine({2: 0.4, 1: 0.1}, share=0.5, idle_cores=0.0)
    c = chooser(machine)
    counts = machine.run(c, 192)
    # 2 warm-up rounds and 2 that show the contention, then a probe of two rounds (the first recompiles)
    assert counts[:4] == [2, 2, 2, 2] and counts[4:6] == [1, 1]
    assert counts[6:] == [1] * 186  # no core is idle: two threads are not tried again
    assert c.current == 1 and c.switches == 1 and c.summary() == "1 thread in 188 rounds, 2 threads in 4 rounds"


def test_it_returns_to_two_threads_once_a_core_is_free_again():
    machine = Machine({2: 0.4, 1: 0.1}, share=0.5, idle_cores=0.0)
    c = chooser(machine)
    machine.run(c, 40)
    assert c.current == 1
    machine.times, machine.share, machine.idle_cores = {2: 0.06, 1: 0.08}, 1.0, 1.0  # the neighbour left
    counts = machine.run(c, 10)
    # the first round shows the idle core, the next probes two threads, and two stay
    assert counts == [1] + [2] * 9 and c.current == 2


def test_where_two_threads_lose_with_a_core_idle_their_probes_come_ever_more_rarely():
    # a CPU where one thread is faster even with a core free (a probe of two must lose, and cost little)
    machine = Machine({2: 0.2, 1: 0.1}, share=0.5, idle_cores=1.0)
    c = chooser(machine)
    counts = machine.run(c, 192)
    probes = [i for i in range(6, 192) if counts[i] == 2]
    assert c.current == 1
    assert len(probes) <= 5  # after 8, 16, 32, 64, 64 rounds
    assert all(b - a >= 8 for a, b in zip(probes, probes[1:], strict=False))


def test_probes_of_one_thread_that_lose_come_ever_more_rarely():
    # our threads get half their cores (a light neighbour, a CPU quota), yet one thread is slower: two stay
    machine = Machine({2: 0.1, 1: 0.3}, share=0.5)
    c = chooser(machine)
    counts = machine.run(c, 192)
    assert c.current == 2 and c.switches == 0
    # the first probe runs two rounds (a new count compiles); then one round each, after 4, 8, ... 64 rounds
    assert c.used[1] <= 8
    ones = [i for i, n in enumerate(counts) if n == 1]
    assert ones[:2] == [4, 5]
    assert all(b - a > 4 for a, b in zip(ones[1:], ones[2:], strict=False))


def test_one_round_that_looks_busy_is_not_enough_to_probe():
    machine = Machine({2: 0.06, 1: 0.08}, share=1.0)
    c = chooser(machine)
    machine.run(c, 10)
    for share in (0.5, 1.0, 0.5, 1.0, 0.5, 1.0):  # every other round busy: not contention
        machine.share = share
        machine.run(c, 1)
    assert c.used == {2: 16, 1: 0}
    machine.share = 0.5
    assert machine.run(c, 4) == [2, 2, 1, 1]  # two in a row: a probe (its first round compiles)


def test_one_option_is_always_that_one():
    machine = Machine({3: 0.1}, share=0.3)
    c = ThreadChooser((3,), idle_clock=machine.clock, cores=2)
    assert machine.run(c, 20) == [3] * 20
    with pytest.raises(ValueError, match="thread counts"):
        ThreadChooser((0,))
    with pytest.raises(ValueError, match="thread counts"):
        ThreadChooser((4, 2, 1))


def test_proc_stat_gives_idle_and_total_ticks_or_none():
    ticks = proc_stat_idle()
    if ticks is None:  # not Linux: the chooser then probes as if a core were idle
        return
    idle, total = ticks
    assert 0 <= idle <= total and total > 0


def test_the_agent_picks_its_rounds_threads_with_a_chooser(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 16)
    cfg = preset_for("CartPole-v1")
    assert DQNAgent(cfg, 4, 2, vector_features).thread_chooser().options == (2, 1)  # automatic, compiled
    assert DQNAgent(cfg.replace(torch_threads=2), 4, 2, vector_features).thread_chooser().options == (2,)
    assert DQNAgent(cfg.replace(compile=False), 4, 2, vector_features).thread_chooser().options == (1,)


def _trained(threads: int, steps: int = 2_048) -> DQNAgent:
    cfg = preset_for("CartPole-v1").replace(total_steps=steps, learning_starts=1_000, seed=3, torch_threads=threads)
    agent = DQNAgent(cfg, 4, 2, vector_features)
    agent.learn(make_env("CartPole-v1", render=False))
    if agent._compiled is None:
        pytest.skip("torch.compile is unavailable here (no C++ compiler?): the rounds ran uncompiled on one thread")
    return agent


def _digest(agent: DQNAgent) -> str:
    return hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in agent.q.parameters())).hexdigest()


@pytest.mark.slow  # a short compiled run of the CartPole preset (11 rounds of 128 steps)
def test_learn_probes_one_thread_when_its_two_do_not_get_their_cores(monkeypatch):
    # CPU time that grows as wall time does: two threads seem to share one core
    monkeypatch.setattr(time, "process_time", time.perf_counter)
    agent = _trained(0, steps=3_584)
    chooser = agent.last_threads
    assert chooser.options == (2, 1) and sum(chooser.used.values()) == 11
    assert chooser.used[1] >= 2  # a probe: two rounds on one thread (the first compiles its graph)
    assert agent._compiled.graphs == {(8, 2), (8, 1)}  # each count's graph, each checked
    assert agent._compiled.checked == {(8, 2): 8, (8, 1): 8}


@pytest.mark.slow  # two short compiled runs of the CartPole preset (5 rounds of 128 steps each)
def test_one_thread_and_two_train_the_same_network_bit_for_bit():
    one, two = _trained(1), _trained(2)
    assert one.last_threads.used == {1: 5} and two.last_threads.used == {2: 5}
    assert _digest(one) == _digest(two)


class Loop:
    """A loop of equal steps on a two-core machine, for :class:`AdaptiveThreads`: each step takes
    the time of the thread count torch is set to, and the process gets ``share`` of its cores."""

    def __init__(self, step_seconds: dict[int, float], share: float = 1.0, idle_cores: float = 0.0) -> None:
        self.step_seconds, self.share, self.idle_cores = step_seconds, share, idle_cores
        self.wall = self.cpu = 0.0
        self.ticks = [0.0, 0.0]
        self.counts: list[int] = []

    def clock(self) -> tuple[float, float]:
        return tuple(self.ticks)

    def adaptive(self, options=(2, 1), **settings) -> AdaptiveThreads:
        return AdaptiveThreads(
            options,
            clock=lambda: self.wall,
            cpu_clock=lambda: self.cpu,
            idle_clock=self.clock,
            cores=2,
            **settings,
        )

    def run(self, threads: AdaptiveThreads, steps: int) -> None:
        for _ in range(steps):
            n = torch.get_num_threads()
            seconds = self.step_seconds[n]
            self.counts.append(n)
            self.wall += seconds
            self.cpu += self.share * n * seconds
            self.ticks[0] += self.idle_cores * seconds * 100
            self.ticks[1] += 2 * seconds * 100
            threads.tick()


@pytest.fixture
def torch_threads():
    """torch's thread count, set to 2 for the test (what a two-core machine has) and put back."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_a_loop_whose_cores_are_free_runs_on_all_its_threads_and_puts_torchs_count_back(torch_threads):
    loop = Loop({2: 0.3, 1: 0.5})
    with loop.adaptive() as threads:
        loop.run(threads, 40)
    assert loop.counts == [2] * 40 and threads.chooser.used == {2: 40, 1: 0}
    assert torch.get_num_threads() == 2


def test_a_loop_beside_another_process_moves_to_fewer_threads_and_back_when_it_leaves(torch_threads):
    # measured: a text-lora fit beside a two-thread neighbour, 1.26 s a step on two threads, 0.75 s on one
    loop = Loop({2: 1.26, 1: 0.75}, share=0.45)
    with loop.adaptive() as threads:
        loop.run(threads, 30)
        assert loop.counts[:6] == [2, 2, 2, 2, 1, 1] and loop.counts[6:] == [1] * 24
        assert torch.get_num_threads() == 1
        loop.step_seconds, loop.share, loop.idle_cores = {2: 0.3, 1: 0.5}, 1.0, 1.0  # the neighbour left
        loop.run(threads, 10)
    assert loop.counts[30:] == [1] + [2] * 9
    assert torch.get_num_threads() == 2  # put back, whatever the loop ended on


def test_short_steps_are_gathered_into_units_judged_by_their_time_per_step(torch_threads):
    loop = Loop({2: 0.01, 1: 0.006}, share=0.45)  # 10 ms steps: a unit is 25 of them
    with loop.adaptive(min_seconds=0.25) as threads:
        loop.run(threads, 1_000)
    assert sum(threads.chooser.used.values()) == pytest.approx(1_000 * 0.006 / 0.25, rel=0.2)
    assert loop.counts[-500:] == [1] * 500 and threads.chooser.switches == 1


def test_restart_leaves_other_work_out_of_the_unit(torch_threads):
    loop = Loop({2: 0.3, 1: 0.5})
    with loop.adaptive() as threads:
        loop.run(threads, 5)
        loop.wall += 60.0  # an evaluation: a minute, no steps
        threads.restart()
        loop.run(threads, 5)
    assert threads.chooser.used == {2: 10, 1: 0} and max(threads.chooser._times[2]) == pytest.approx(0.3)


def test_rlhf_threads_fixes_the_count_and_anything_else_is_refused(torch_threads, monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert configured_threads() is None
    assert AdaptiveThreads().chooser.options == (2, 1)  # torch's count, and half of it
    monkeypatch.setenv(THREADS_ENV, "auto")
    assert configured_threads() is None
    monkeypatch.setenv(THREADS_ENV, "1")
    assert configured_threads() == 1
    loop = Loop({1: 0.5}, share=0.3)  # one thread, however busy the cores look: no probe, no other count
    with AdaptiveThreads(clock=lambda: loop.wall, cpu_clock=lambda: loop.cpu) as threads:
        assert torch.get_num_threads() == 1
        loop.run(threads, 20)
    assert threads.chooser.options == (1,) and loop.counts == [1] * 20 and torch.get_num_threads() == 2
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(THREADS_ENV, bad)
        with pytest.raises(InvalidInputError, match="RLHF_THREADS.*whole number of at least 1"):
            configured_threads()


def test_settle_leaves_a_probe_for_the_count_the_choice_keeps(torch_threads):
    loop = Loop({2: 0.3, 1: 0.5}, share=0.45)  # looks contended, but one thread is slower: probes lose
    with loop.adaptive() as threads:
        loop.run(threads, 5)
        assert loop.counts == [2, 2, 2, 2, 1] and torch.get_num_threads() == 1  # mid-probe
        threads.settle()  # the evaluation that follows a fit
        assert torch.get_num_threads() == 2 and threads.chooser.current == 2
