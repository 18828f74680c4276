"""Background jobs' rows: one active job per kind and project, claiming, progress, cancel, death."""

from __future__ import annotations

from datetime import timedelta

from db import repo
from db.engine import session_scope
from db.models import Job, JobStatus, utcnow
from tests.db.conftest import seed_project


def test_a_job_runs_from_queued_to_succeeded_and_progress_never_goes_back(store):
    with session_scope(store, write=True) as s:
        job_id = repo.create_job(s, None, "train-classifier", {"mode": "lora"}).id
        assert repo.active_job(s, None, "train-classifier").id == job_id
    with session_scope(store, write=True) as s:
        assert repo.start_job(s, job_id, pid=42) == ("train-classifier", {"mode": "lora"})
        assert repo.start_job(s, job_id, pid=43) is None  # one worker only
    with session_scope(store, write=True) as s:
        assert repo.report_progress(s, job_id, 0.6, "fit: 6/10") is False
        repo.report_progress(s, job_id, 0.4, "fit: 4/10")  # late report: the bar stays
        assert repo.finish_job(s, job_id, JobStatus.succeeded, {"accuracy": 0.9}, None, "done") is JobStatus.succeeded
    with session_scope(store) as s:
        job = repo.get_job(s, job_id)
        assert (job.status, job.progress, job.pid, job.result) == (JobStatus.succeeded, 1.0, 42, {"accuracy": 0.9})
        assert repo.active_job(s, None, "train-classifier") is None


def test_cancel_stops_a_queued_job_at_once_and_asks_a_running_one(store):
    first, second = seed_project(store, name="a"), seed_project(store, name="b")
    with session_scope(store, write=True) as s:
        queued = repo.create_job(s, first, "train-reward", {}).id
        running = repo.create_job(s, second, "train-reward", {}).id
        repo.start_job(s, running, pid=1)
        repo.request_cancel(s, queued)
        repo.request_cancel(s, running)
    with session_scope(store, write=True) as s:
        assert repo.get_job(s, queued).status is JobStatus.cancelled
        assert repo.get_job(s, running).status is JobStatus.running and repo.cancel_requested(s, running)
        assert repo.report_progress(s, running, 0.5, "fit: 1/2") is True  # the worker learns it on its next report


def test_a_silent_worker_is_declared_dead_and_its_late_verdict_does_not_overwrite_that(store):
    project = seed_project(store)
    with session_scope(store, write=True) as s:
        job_id = repo.create_job(s, project, "train-policy", {}).id
        repo.start_job(s, job_id, pid=1)
        s.get(Job, job_id).heartbeat_at = utcnow() - repo.STALE_AFTER - timedelta(seconds=1)
    with session_scope(store, write=True) as s:
        assert repo.is_stale(repo.get_job(s, job_id))
        repo.expire_stale_jobs(s)
    with session_scope(store, write=True) as s:
        assert repo.get_job(s, job_id).status is JobStatus.failed
        assert repo.finish_job(s, job_id, JobStatus.succeeded, {}, None, "done") is JobStatus.failed
