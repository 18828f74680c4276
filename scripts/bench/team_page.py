"""Benchmark: what the Team page costs per rerun on a project of team size (issue 14).

Run: ``python scripts/bench/team_page.py [--pairs 100000] [--repeats 3]``

A text project of ``--pairs`` pairs (``create_team_demo``) in a fresh SQLite data folder, each
pair answered by two annotators (random answers inserted in bulk: the labeling path is
timed by ``labeling.py``). Timed, ``--repeats`` times: ``agreement()`` (the report, computed
on every rerun of the page until session 24), and what a rerun costs now that the page keeps
the report until the project changes: ``agreement_state()`` (the cache's key) plus
``with_current_rulings()`` (rulings read fresh over the kept report).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import insert, select

from app.config import Settings, Studio
from app.services import agreement, projects, text_data
from db import repo
from db.engine import session_scope
from db.models import Choice, Label, Query, utcnow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    studio = Studio(Settings.from_env(Path(tempfile.mkdtemp()) / "data"))
    started = time.perf_counter()
    text_data.create_team_demo(studio, "team", pairs=args.pairs)
    projects.update_settings(studio, "team", labels_per_pair=2)
    rng = np.random.default_rng(0)
    now = utcnow()
    with session_scope(studio.engine, write=True) as session:
        project_id = repo.get_project(session, "team").id
        query_ids = list(session.scalars(select(Query.id).where(Query.project_id == project_id)))
        rows = []
        for name in ("ann", "bo"):
            annotator = repo.get_or_create_annotator(session, name)
            session.flush()
            for query_id in query_ids:
                left = bool(rng.random() < 0.5)
                rows.append(
                    {
                        "query_id": query_id,
                        "annotator_id": annotator.id,
                        "choice": Choice.left if left else Choice.right,
                        "pref": 1.0 if left else 0.0,
                        "swapped": False,
                        "shown_at": now - timedelta(seconds=5),
                        "answered_at": now,
                    }
                )
        session.execute(insert(Label), rows)
    print(f"{len(query_ids)} pairs, {len(rows)} labels, built in {time.perf_counter() - started:.1f} s")
    print("| agreement() (computed) | agreement_state() | with_current_rulings() | rerun now / before |")
    print("|---|---|---|---|")
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        report = agreement.agreement(studio, "team", disputed=10)
        t1 = time.perf_counter()
        agreement.agreement_state(studio, "team")
        t2 = time.perf_counter()
        agreement.with_current_rulings(studio, report)
        t3 = time.perf_counter()
        ratio = (t3 - t1) / (t1 - t0)
        print(f"| {t1 - t0:.2f} s | {1000 * (t2 - t1):.0f} ms | {1000 * (t3 - t2):.0f} ms | {ratio:.3f} |")


if __name__ == "__main__":
    main()
