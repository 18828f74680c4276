"""Many annotators at once: 8 processes label 500 pairs each on one SQLite file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from db import repo
from db.engine import make_engine, session_scope
from db.models import Annotator, Choice, Label, Query
from tests.db.conftest import seed_project

WORKERS, LABELS_EACH = 8, 500


def _annotate(url: str, name: str, n: int, project_id: int) -> list[str]:
    """One annotator process: claim a pair, answer it, n times. Returns the errors it met."""
    engine = make_engine(url)
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    errors: list[str] = []
    with session_scope(engine, write=True) as session:
        annotator_id = repo.get_or_create_annotator(session, name).id
    done = 0
    while done < n:
        try:
            with session_scope(engine, write=True) as session:
                served = repo.claim_next_query(session, project_id, annotator_id, rng=rng)
            if served is None:
                errors.append("ran out of queries")
                break
            with session_scope(engine, write=True) as session:
                repo.record_label(session, served.query_id, annotator_id, Choice.left, swapped=served.swapped)
            done += 1
        except Exception as exc:  # collected and asserted on in the parent
            errors.append(f"{type(exc).__name__}: {exc}")
            if len(errors) > 20:
                break
    return errors


@pytest.mark.slow
def test_eight_processes_writing_500_labels_each_lose_none(store, db_url):
    project_id = seed_project(store, n_items=100, n_queries=WORKERS * LABELS_EACH)
    # Separate interpreters (not multiprocessing, whose spawned children would re-run whatever
    # script is __main__ in this process, e.g. a page an earlier AppTest ran).
    code = (
        "import json, sys; from tests.db.test_concurrency import _annotate; "
        "print(json.dumps(_annotate(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))"
    )
    root = Path(__file__).resolve().parents[2]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, db_url, f"annotator-{i}", str(LABELS_EACH), str(project_id)],
            cwd=root,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(WORKERS)
    ]
    errors = []
    for proc in procs:
        out, _ = proc.communicate(timeout=500)
        assert proc.returncode == 0, f"worker exited with {proc.returncode}"
        errors += json.loads(out.strip().splitlines()[-1])
    assert errors == [], errors[:5]
    with session_scope(store) as session:
        assert session.scalar(select(func.count(Label.id))) == WORKERS * LABELS_EACH
        # one label per query: no two annotators were ever served the same pair
        assert session.scalar(select(func.count(func.distinct(Label.query_id)))) == WORKERS * LABELS_EACH
        per_annotator = session.execute(
            select(Annotator.name, func.count(Label.id))
            .join(Label, Label.annotator_id == Annotator.id)
            .group_by(Annotator.name)
        ).all()
        assert sorted(n for _, n in per_annotator) == [LABELS_EACH] * WORKERS
        assert session.scalar(select(func.count(Query.id))) == WORKERS * LABELS_EACH
