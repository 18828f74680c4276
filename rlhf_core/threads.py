"""How many threads a training loop computes on: all of them where the cores are free, fewer where not.

Two threads ran the DQN's compiled 64x256 by 256x256 products 1.3-1.8x faster than one on an
idle two-core machine, and a text reward model's LoRA fit 1.7x faster. But where another
process computes on the same cores (a second training: the app runs up to ``RLHF_MAX_JOBS``
jobs at once; a benchmark; a neighbour on a shared host), the threads of each product wait
for each other at its end, and a thread that is not scheduled holds up the one that is: two
CartPole trainings side by side on two cores took 146-148 s each with two threads, 26 s each
with one (21-24 s alone); a text-lora fit beside a two-thread neighbour took 102 s on two
threads, 60 s on one (24 s alone; docs/benchmarks.md). Which count is faster depends on what
else runs, and that changes during a training, so each unit of work (a DQN's update round, a
reward model's epoch) is measured and the choice follows:

- *Our threads do not get their cores.* When in each of the last 2 units on ``n`` threads
  the process used less than ``share`` of ``n`` cores' time (its CPU time over ``n`` times
  the unit's wall time: about 1.0 where the cores are ours, 0.5-0.75 beside another
  process), the next unit tries fewer threads (a probe); if it was faster by ``margin``
  than the recent units, fewer threads it is. Probes of fewer threads that lose come at
  doubling intervals (4, 8, ... up to ``max_interval`` units). On an idle machine whose
  work keeps its threads busy no unit is probed, so nothing is paid there.
- *A core is free again.* On fewer threads, the next unit on more is probed where at least
  half a core of those this process may use was idle since the last look (``/proc/stat``,
  the CPUs of ``os.sched_getaffinity``; where that cannot be read, whenever a probe is due),
  at doubling intervals (8, 16, ... up to ``max_interval`` units) while such probes lose.

The first unit on a thread count is never compared: a DQN's compiles that count's graph
(about 1 s from torch's cache: dynamo guards on the thread count), so a probe on a new count
runs two units and is judged by the second. :class:`ThreadChooser` decides; the DQN's
``learn`` drives one per training (its rounds), :class:`AdaptiveThreads` drives one for any
loop that reports its steps (the reward models' fits, through the services' progress).

What it changes is speed, and where it does not, results: the DQN's trained network is bit
for bit the same on one thread and on two on the CPUs measured (a test checks it); a text
reward model's loss differed in the fourth digit. ``RLHF_THREADS`` (a number) fixes the count
of every such loop instead, for runs that must repeat to the bit whatever else the machine
does. Limits: a CPU quota (cgroups) is not read; work outside the loops (encoders, scoring,
evaluations) keeps torch's thread count.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from statistics import median
from types import TracebackType

from rlhf_core.errors import InvalidInputError

THREADS_ENV = "RLHF_THREADS"

#: Idle and total time (ticks) of the CPUs this process may run on, or None where unknown.
IdleClock = Callable[[], "tuple[float, float] | None"]


def configured_threads() -> int | None:
    """The thread count ``RLHF_THREADS`` fixes for training loops, or None (``auto`` or unset:
    chosen as the module docstring says); InvalidInputError for anything else."""
    raw = os.environ.get(THREADS_ENV, "").strip().lower()
    if raw in ("", "auto"):
        return None
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise InvalidInputError(
            f"{THREADS_ENV}={raw!r} is not a thread count: set a whole number of at least 1, "
            "or 'auto' (or nothing) to let each training choose as the cores allow"
        )
    return n


def usable_cpus() -> list[int]:
    """The CPUs this process may run on."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return list(range(os.cpu_count() or 1))


def proc_stat_idle(cpus: Sequence[int] | None = None) -> tuple[float, float] | None:
    """(idle, total) ticks of ``cpus`` (default: :func:`usable_cpus`) from Linux's ``/proc/stat``
    (idle and I/O wait count as idle); None where it cannot be read or lists none of them."""
    wanted = {f"cpu{i}" for i in (usable_cpus() if cpus is None else cpus)}
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    idle = total = 0.0
    found = False
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or fields[0] not in wanted:
            continue
        ticks = [float(x) for x in fields[1:9]]
        idle += ticks[3] + ticks[4]
        total += sum(ticks)
        found = True
    return (idle, total) if found and total > 0 else None


class ThreadChooser:
    """Picks each unit of work's thread count (a DQN's update round, an epoch) from ``options``
    (the preferred one first; one or two counts) by how the earlier units ran; see the module
    docstring. Its methods speak of rounds. ``idle_clock`` and ``cores`` say how idle the
    usable CPUs are (injected by tests)."""

    def __init__(
        self,
        options: Sequence[int],
        *,
        warmup: int = 2,
        share: float = 0.8,
        margin: float = 0.85,
        max_interval: int = 64,
        idle_clock: IdleClock = proc_stat_idle,
        cores: int | None = None,
    ) -> None:
        counts = tuple(dict.fromkeys(int(n) for n in options))
        if not counts or min(counts) < 1 or len(counts) > 2:
            raise ValueError(f"one or two thread counts of at least 1, got {tuple(options)}")
        self.options = counts
        self.current = counts[0]
        self.warmup, self.share, self.margin, self.max_interval = warmup, share, margin, max_interval
        self.idle_clock = idle_clock
        self.cores = cores or len(usable_cpus())
        self.rounds = 0
        """Rounds recorded so far."""
        self.used: dict[int, int] = dict.fromkeys(counts, 0)
        """Rounds run on each count."""
        self.switches = 0
        self._times: dict[int, deque[float]] = {n: deque(maxlen=3) for n in counts}
        self._shares: deque[float] = deque(maxlen=2)
        self._probing: int | None = None
        self._up_interval, self._down_interval = 8, 4
        self._next_up = self._next_down = 0  # rounds from which a probe of more (fewer) threads may come
        self._idle_since = idle_clock()

    @property
    def _other(self) -> int | None:
        return next((n for n in self.options if n != self.current), None)

    def threads(self) -> int:
        """The thread count for the next round."""
        other = self._other
        if self._probing is not None:  # the second round of a probe on a new count
            return self._probing
        if other is None or self.rounds < self.warmup:
            return self.current
        if other < self.current:
            probe = (
                self.rounds >= self._next_down
                and len(self._shares) == self._shares.maxlen
                and max(self._shares) < self.share
            )
        else:
            probe = self.rounds >= self._next_up and self._idle_cores() >= 0.5
        if probe:
            self._probing = other
            return other
        return self.current

    def _idle_cores(self) -> float:
        """Usable cores idle on average since the last look (where unknown: as if one were)."""
        now, since = self.idle_clock(), self._idle_since
        self._idle_since = now
        if now is None or since is None or now[1] <= since[1]:
            return float(self.cores)
        return self.cores * (now[0] - since[0]) / (now[1] - since[1])

    def record(self, threads: int, seconds: float, cpu_seconds: float | None = None) -> None:
        """How long the round just run on ``threads`` took: wall time, and this process's CPU time
        (``time.process_time``) where known."""
        self.rounds += 1
        first = not self.used.get(threads)  # its graph compiled in this round: not a fair time
        self.used[threads] = self.used.get(threads, 0) + 1
        if first or self.rounds <= self.warmup or threads not in self._times:
            return  # (a probe on a new count stays on for its second round)
        probing, self._probing = self._probing, None
        if probing is not None and threads == probing:
            self._judge(threads, seconds)
            return
        self._times[threads].append(seconds)
        if cpu_seconds is not None and seconds > 0:
            self._shares.append(cpu_seconds / (threads * seconds))

    def _judge(self, threads: int, seconds: float) -> None:
        mine = self._times[self.current]
        won = not mine or seconds < self.margin * median(mine)
        self._times[threads].clear()  # what this count took before says little about now
        self._times[threads].append(seconds)
        self._shares.clear()
        if won:
            self.current = threads
            self.switches += 1
            self._up_interval, self._down_interval = 8, 4
        elif threads > self.current:
            self._up_interval = min(2 * self._up_interval, self.max_interval)
        else:
            self._down_interval = min(2 * self._down_interval, self.max_interval)
        self._next_up = self.rounds + self._up_interval
        self._next_down = self.rounds + self._down_interval
        self._idle_since = self.idle_clock()

    def summary(self, unit: str = "round") -> str:
        """E.g. "2 threads in 188 rounds, 1 thread in 4 rounds"."""
        counts = sorted(((n, k) for n, k in self.used.items() if k), key=lambda nk: -nk[1])
        return (
            ", ".join(f"{n} thread{'s' if n > 1 else ''} in {k} {unit}{'s' if k > 1 else ''}" for n, k in counts)
            or f"no {unit}s"
        )


Clock = Callable[[], float]


class AdaptiveThreads:
    """Runs a loop on the thread counts a :class:`ThreadChooser` picks, unit by unit.

    ``with AdaptiveThreads() as threads:`` sets the first unit's count; the loop calls
    :meth:`tick` after each of its steps (an epoch, an optimizer step: steps of about equal
    work). Steps are gathered into units of at least ``min_seconds``, each recorded as its
    time per step, so loops of millisecond steps are judged on enough time to tell. On exit
    torch's thread count is what it was before.

    The options are torch's thread count (the preferred one) and half of it (one on two
    cores: the other half is a second job's), or the count ``RLHF_THREADS`` fixes; or
    ``options`` where given; with ``choose`` False only the first of those (a loop whose steps
    differ in work). The clocks are injectable for tests.
    """

    def __init__(
        self,
        options: Sequence[int] | None = None,
        *,
        min_seconds: float = 0.25,
        choose: bool = True,
        clock: Clock | None = None,
        cpu_clock: Clock | None = None,
        **chooser_settings: object,
    ) -> None:
        import torch  # here: configured_threads is read where torch is not loaded (the app's pages)

        if options is None:
            fixed = configured_threads()
            preferred = torch.get_num_threads()
            if fixed is not None or not choose:  # ``choose`` False: one count, as for a loop of bursts
                options = (fixed or preferred,)
            else:
                options = (preferred, max(1, preferred // 2))
        self.chooser = ThreadChooser(options, **chooser_settings)  # type: ignore[arg-type]
        self.min_seconds = min_seconds
        self.clock = clock or time.perf_counter
        self.cpu_clock = cpu_clock or time.process_time
        self.threads = self.chooser.current
        self._before: int | None = None
        self._steps = 0
        self._wall = self._cpu = 0.0

    def __enter__(self) -> AdaptiveThreads:
        import torch

        self._before = torch.get_num_threads()
        self._start_unit()
        return self

    @staticmethod
    def _use(threads: int) -> None:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._before is not None:
            self._use(self._before)

    def _start_unit(self) -> None:
        self.threads = self.chooser.threads()
        self._use(self.threads)
        self._steps = 0
        self._wall, self._cpu = self.clock(), self.cpu_clock()

    def ticking(self, on_step: Callable[..., None] | None) -> Callable[..., None]:
        """A progress callback that ticks (one step per call) and then calls ``on_step``."""

        def tick_then_report(*args: object, **kwargs: object) -> None:
            self.tick()
            if on_step is not None:
                on_step(*args, **kwargs)

        return tick_then_report

    def settle(self) -> None:
        """Leave the loop's units: torch on the count the choice settled on (not a probe's) for the
        work that follows inside the block (an evaluation)."""
        self.threads = self.chooser.current
        self._use(self.threads)

    def restart(self) -> None:
        """Start the unit anew, not counting the steps and time since the last one ended (other
        work ran in the loop: an evaluation)."""
        self._start_unit()

    def tick(self, steps: int = 1) -> None:
        """``steps`` more steps of the loop are done: once a unit's time is reached, record it and
        set the next unit's count."""
        self._steps += steps
        seconds = self.clock() - self._wall
        if seconds < self.min_seconds or self._steps <= 0:
            return
        cpu = self.cpu_clock() - self._cpu
        self.chooser.record(self.threads, seconds / self._steps, cpu / self._steps)
        self._start_unit()
