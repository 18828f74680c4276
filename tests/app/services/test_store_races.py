"""What races when many processes share one label store, on SQLite and on PostgreSQL: job
submission (check, then insert), version numbering (newest + 1) and schema upgrades."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from app.config import Settings, Studio
from app.services import jobs, text_data
from db import repo
from db.engine import current_revision, head_revision, session_scope

ROOT = Path(__file__).resolve().parents[3]
N = 6


def _at_once(fn, n: int = N) -> list:
    """Run ``fn(i)`` in n threads released together; their results or exceptions."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except Exception as exc:  # noqa: BLE001 (collected and asserted on)
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def _studio(tmp_path: Path, database_url: str) -> Studio:
    studio = Studio(Settings.from_env(tmp_path / "data", database_url))
    text_data.create_team_demo(studio, "p", pairs=4)
    return studio


def test_one_job_of_a_kind_per_project_when_many_submit_at_once(tmp_path, database_url):
    studio = _studio(tmp_path, database_url)
    with session_scope(studio.engine) as session:
        pid = repo.get_project(session, "p").id
    results = _at_once(lambda i: jobs.submit(studio, pid, "train-reward", {"project": "p"}, spawn=False))
    made = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, jobs.JobError)]
    assert len(made) == 1 and len(refused) == N - 1, results


def test_versions_registered_at_once_get_distinct_numbers_and_one_is_active(tmp_path, database_url):
    studio = _studio(tmp_path, database_url)
    with session_scope(studio.engine) as session:
        pid = repo.get_project(session, "p").id

    def register(i: int) -> int:
        with session_scope(studio.engine, write=True) as session:
            fields = dict(kind="bt", config={}, label_count=i, label_hash="h", metrics={}, path=f"m{i}", job_id=None)
            return repo.register_reward_model(session, pid, **fields).version

    results = _at_once(register)
    assert all(isinstance(r, int) for r in results), results
    assert sorted(results) == list(range(1, N + 1))
    with session_scope(studio.engine) as session:
        assert sum(r.active for r in repo.reward_models(session, pid)) == 1


def test_processes_upgrading_one_empty_store_at_once_all_succeed(tmp_path, database_url):
    code = (
        "import sys; from db.engine import make_engine, current_revision; "
        "print(current_revision(make_engine(sys.argv[1])))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, database_url], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]  # fmt: skip
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        assert out.strip() == head_revision()
    from db.engine import make_engine

    assert current_revision(make_engine(database_url)) == head_revision()
