"""How many threads a DQN's update rounds run on: two where the cores are free, one where not.

Two threads ran the compiled rounds' 64x256 by 256x256 products 1.3-1.8x faster on an idle
two-core machine. But where another process computes on the same cores (a second training:
the app runs up to ``RLHF_MAX_JOBS`` jobs at once; a benchmark; a neighbour on a shared host),
the threads of each product wait for each other at its end, and a thread that is not
scheduled holds up the one that is: two CartPole trainings side by side on two cores took
146-148 s each with two threads, 26 s each with one (21-24 s alone; docs/benchmarks.md).
Which count is faster depends on what else runs, and that changes during a training, so
each round is measured and the choice follows:

- *Our threads do not get their cores.* When in each of the last 2 rounds on ``n`` threads
  the process used less than ``share`` of ``n`` cores' time (its CPU time over ``n`` times
  the round's wall time: about 1.0 where the cores are ours, 0.5-0.75 beside another
  process), the next round tries fewer threads (a probe); if it was faster by ``margin``
  than the recent rounds, fewer threads it is. Probes of fewer threads that lose come at
  doubling intervals (4, 8, ... up to ``max_interval`` rounds). On an idle machine no round
  is probed, so nothing is paid there.
- *A core is free again.* On fewer threads, the next round on more is probed where at least
  half a core of those this process may use was idle since the last look (``/proc/stat``,
  the CPUs of ``os.sched_getaffinity``; where that cannot be read, whenever a probe is due),
  at doubling intervals (8, 16, ... up to ``max_interval`` rounds) while such probes lose.

The first round on a thread count is never compared: it compiles that count's graph (about
1 s from torch's cache: dynamo guards on the thread count), so a probe on a new count runs
two rounds and is judged by the second. The thread count changes how fast a round runs, not
what it computes: on the CPUs measured, the trained network is bit for bit the same on one
thread and on two (a test checks it). Limits: a CPU quota (cgroups) is not read, and only
the update rounds are chosen for (encoders and evaluations between rounds keep torch's
thread count).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from statistics import median

#: Idle and total time (ticks) of the CPUs this process may run on, or None where unknown.
IdleClock = Callable[[], "tuple[float, float] | None"]


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
    """Picks each update round's thread count from ``options`` (the preferred one first; one or
    two counts) by how the earlier rounds ran; see the module docstring. ``idle_clock`` and
    ``cores`` say how idle the usable CPUs are (injected by tests)."""

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

    def summary(self) -> str:
        """E.g. "2 threads in 188 rounds, 1 thread in 4 rounds"."""
        counts = sorted(((n, k) for n, k in self.used.items() if k), key=lambda nk: -nk[1])
        return (
            ", ".join(f"{n} thread{'s' if n > 1 else ''} in {k} round{'s' if k > 1 else ''}" for n, k in counts)
            or "no rounds"
        )
