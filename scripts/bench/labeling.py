"""Benchmark: demo creation time and the server time of one label on the labeling page.

Run: ``python scripts/bench/labeling.py [--labels 200] [--env MiniGrid-Empty-Random-6x6-v0]``
or, for projects of team size: ``python scripts/bench/labeling.py --pairs 100000 --stored-labels 1000000
[--postgres]`` (a text project written straight into the store, then the same label cycle
on it and on a 300-pair project, side by side; target p95 <= 30 ms, flat from 300 pairs up).

Measures, on a fresh temporary data folder:
1. ``rlhf demo`` with the default counts (target: under 2 minutes on this machine);
2. the server work of one label as the page does it: store the answer, claim and load
   the next pair (its clip pre-rendered), read the progress (target: under 200 ms);
3. the same when the next clip must be rendered first (its file was deleted): the
   baseline of a tool that renders clips on request, printed side by side with 2.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from app.config import Settings, Studio
from app.services import labeling
from app.services.demo import create_demo_project
from db.models import Choice
from rlhf_core.envs.registry import DEFAULT_ENV_ID


def _percentiles(ms: list[float]) -> str:
    q = np.percentile(ms, [50, 95])
    return f"p50 {q[0]:6.1f} ms  p95 {q[1]:6.1f} ms  max {max(ms):6.1f} ms"


def _label_cycle(studio: Studio, ls: labeling.LabelingSession, n: int, delete_clips: bool) -> list[float]:
    rng = np.random.default_rng(0)
    pair = labeling.next_pair(studio, ls, rng=rng)
    timings = []
    for i in range(n):
        assert pair is not None
        if delete_clips:
            for gif in (studio.settings.data_dir / "projects").rglob("*.gif"):
                gif.unlink()
        start = time.perf_counter()
        labeling.submit_label(studio, ls, pair, (Choice.left, Choice.right, Choice.equal)[i % 3])
        pair = labeling.next_pair(studio, ls, rng=rng)
        labeling.progress(studio, ls)
        timings.append((time.perf_counter() - start) * 1000)
    return timings


def _text_project(studio: Studio, name: str, pairs: int, labels: int, annotators: int = 100) -> float:
    """A text project of ``pairs`` pairs and ``labels`` stored answers (spread over
    ``annotators`` people, so every pair still wants more), inserted in bulk; returns seconds."""
    from app.services import bulk

    start = time.perf_counter()
    bulk.synthetic_text_project(studio, name, pairs=pairs, labels=labels, annotators=annotators)
    return time.perf_counter() - start


def _team_size(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = None
        cluster = None
        if args.postgres:
            sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
            from tests import postgres

            cluster = postgres.start()
            url = cluster.new_database()
        try:
            studio = Studio(Settings.from_env(Path(tmp), url))
            rows = []
            for name, pairs, labels in (("small", 300, 0), ("large", args.pairs, args.stored_labels)):
                seconds = _text_project(studio, name, pairs, labels)
                ls = labeling.open_session(studio, name, "bench-annotator")
                timings = _label_cycle(studio, ls, args.labels, delete_clips=False)
                rows.append((name, pairs, labels, seconds, timings))
            # one annotator far ahead of the others: their answers on half of the pairs wait for
            # two more people's (3 per pair), and they label on
            ahead = args.pairs // 2
            seconds = _text_project(studio, "ahead", args.pairs, ahead, annotators=1)
            ls = labeling.open_session(studio, "ahead", "ahead-annotator-0")
            rows.append(
                ("ahead", args.pairs, ahead, seconds, _label_cycle(studio, ls, args.labels, delete_clips=False))
            )
            backend = "PostgreSQL" if args.postgres else "SQLite"
            for name, pairs, labels, seconds, timings in rows:
                who = "an annotator with those answers" if name == "ahead" else "a new annotator"
                print(
                    f"{backend} {pairs:>7} pairs, {labels:>8} labels (written in {seconds:5.1f} s), {who}: "
                    f"label -> next pair -> progress {_percentiles(timings)}"
                )
            small, large, far = (float(np.percentile(r[4], 95)) for r in rows)
            print(f"p95 large / small: {large / small:.2f}x, far ahead / small: {far / small:.2f}x "
                  "(target: p95 <= 30 ms at the large size)")  # fmt: skip
        finally:
            if cluster is not None:
                cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=200, help="labels given in the timed cycle")
    parser.add_argument("--env", default=DEFAULT_ENV_ID)
    parser.add_argument("--pairs", type=int, default=None, help="team size: pairs of a text project")
    parser.add_argument("--stored-labels", type=int, default=0, help="team size: answers already stored")
    parser.add_argument("--postgres", action="store_true", help="team size: on a throw-away PostgreSQL server")
    args = parser.parse_args()
    labeling.MIN_VIEW_SECONDS = 0.0  # the server's work is timed here, not a person's look at the pair
    if args.pairs is not None:
        _team_size(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        studio = Studio(Settings.from_env(Path(tmp)))
        start = time.perf_counter()
        result = create_demo_project(studio, "bench", args.env)
        demo_s = time.perf_counter() - start
        print(
            f"demo ({args.env}): {result.counts.items} segments, {result.counts.queries} queries in {demo_s:.1f} s "
            f"(target < 120 s)"
        )
        ls = labeling.open_session(studio, "bench", "bench-annotator")
        warm = _label_cycle(studio, ls, args.labels, delete_clips=False)
        cold = _label_cycle(studio, ls, min(20, args.labels), delete_clips=True)
    print(f"label -> next pair, clip prerendered   ({len(warm)} labels): {_percentiles(warm)}  (target p95 < 200 ms)")
    print(f"label -> next pair, clip rendered now  ({len(cold)} labels): {_percentiles(cold)}")
    print(f"ratio render-on-demand / prerendered (median): {statistics.median(cold) / statistics.median(warm):.1f}x")


if __name__ == "__main__":
    main()
