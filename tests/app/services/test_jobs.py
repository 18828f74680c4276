"""Background jobs (app.jobs): submit, run, cancel, failures, dead workers, the real worker process."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import _cartpole as cp
import pytest

from app.services import jobs, model_registry
from app.services.rewards import train_reward_model
from db import repo
from db.engine import session_scope
from db.models import Job, JobStatus, utcnow
from rlhf_core.errors import InvalidInputError
from rlhf_core.rewards.ensemble import EnsembleBT

SMALL = {"members": 3, "epochs": 5}
PARAMS = {"project": cp.PROJECT, "kind": "ensemble", "config": SMALL}


@pytest.fixture(scope="module")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 16-segment CartPole project with 30 oracle labels (small: one job test is in `make test-fast`)."""
    return cp.build(tmp_path_factory.mktemp("cartpole") / "data", n_segments=16, n_queries=36, oracle_labels=30)


@pytest.fixture(scope="module")
def template(sqlite_template: Path, template_store: str | None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project on SQLite, then on PostgreSQL (job submission, claims and version numbers race there)."""
    if template_store is None:
        return sqlite_template
    return cp.on_postgres(sqlite_template, tmp_path_factory.mktemp("cartpole-pg") / "data", template_store)


@pytest.fixture
def data(template: Path, tmp_path: Path) -> Path:
    return cp.copy(template, tmp_path / "studio")


def _project_id(studio) -> int:
    with session_scope(studio.engine) as session:
        return repo.get_project(session, cp.PROJECT).id


def _versions(data: Path) -> list[tuple]:
    """(version, active, job_id) of every reward model."""
    return cp.rows(data, "SELECT version, active, job_id FROM reward_model ORDER BY version")


# in `make test-fast`: one job, trained in process, end to end (a reward model fit, registered)
def test_submitted_job_runs_in_process_and_registers_a_version(data: Path) -> None:
    studio = cp.studio_for(data)
    pid = _project_id(studio)

    job_id = jobs.submit(studio, pid, "train-reward", PARAMS, spawn=False)

    queued = jobs.get(studio, job_id)
    assert queued.status is JobStatus.queued and queued.active and queued.progress == 0.0
    assert jobs.latest(studio, pid, "train-reward").id == job_id
    with pytest.raises(jobs.JobError, match=f"job #{job_id}.*still queued"):
        jobs.submit(studio, pid, "train-reward", PARAMS, spawn=False)

    assert jobs.run(studio, job_id) is JobStatus.succeeded

    done = jobs.get(studio, job_id)
    assert done.status is JobStatus.succeeded and not done.active
    assert done.progress == 1.0 and done.error is None and done.message == "done"
    assert done.result["version"] == 1 and done.result["kind"] == "ensemble"
    assert done.result["n_labels"] == 30
    [row] = model_registry.registry(studio, cp.PROJECT)  # the job reports the registered model's numbers
    assert done.result["val_accuracy"] == row["val_accuracy"] and done.result["log_loss"] == row["log_loss"]
    lists = {k for k, v in done.result.items() if isinstance(v, list)}
    assert lists == {"val_accuracy_ci95"}  # plots stay on the model row; the interval comes along
    low, high = done.result["val_accuracy_ci95"]
    assert low <= done.result["val_accuracy"] <= high
    assert _versions(data) == [(1, 1, job_id)]
    assert cp.rows(data, "SELECT pid FROM job WHERE id = ?", job_id) == [(os.getpid(),)]
    # a finished job does not block the next one, and running it twice does nothing
    assert jobs.run(studio, job_id) is JobStatus.succeeded
    assert _versions(data) == [(1, 1, job_id)]
    assert jobs.submit(studio, pid, "train-reward", PARAMS, spawn=False) == job_id + 1


@pytest.mark.slow
def test_second_submit_while_one_runs_is_refused(data: Path) -> None:
    studio = cp.studio_for(data)
    pid = _project_id(studio)
    job_id = jobs.submit(studio, pid, "train-reward", PARAMS, spawn=False)
    with session_scope(studio.engine, write=True) as session:
        job = session.get(Job, job_id)
        job.status, job.heartbeat_at = JobStatus.running, utcnow()

    with pytest.raises(jobs.JobError, match="still running"):
        jobs.submit(studio, pid, "train-reward", PARAMS, spawn=False)
    with pytest.raises(jobs.JobError, match="unknown job kind"):
        jobs.submit(studio, pid, "make-coffee", {}, spawn=False)
    assert cp.rows(data, "SELECT count(*) FROM job") == [(1,)]


def test_a_bad_rlhf_threads_is_refused_before_anything_is_queued(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    studio = cp.studio_for(data)
    monkeypatch.setenv("RLHF_THREADS", "all")
    with pytest.raises(jobs.JobError, match="RLHF_THREADS='all' is not a thread count"):  # the pages show JobError
        jobs.submit(studio, _project_id(studio), "train-reward", PARAMS, spawn=False)
    assert cp.rows(data, "SELECT count(*) FROM job") == [(0,)]
    with pytest.raises(InvalidInputError, match="RLHF_THREADS"):  # a worker started with it takes nothing
        jobs.work(studio, drain=True)
    assert cp.rows(data, "SELECT count(*) FROM worker") == [(0,)]


@pytest.mark.slow
def test_cancel_before_run_cancels_at_once(data: Path) -> None:
    studio = cp.studio_for(data)
    job_id = jobs.submit(studio, _project_id(studio), "train-reward", PARAMS, spawn=False)

    jobs.cancel(studio, job_id)

    view = jobs.get(studio, job_id)
    assert view.status is JobStatus.cancelled and view.cancel_requested and not view.active
    assert jobs.run(studio, job_id) is JobStatus.cancelled  # a late worker does nothing
    assert _versions(data) == []
    assert cp.model_folders(data) == []


@pytest.mark.slow
def test_cancel_requested_while_running_stops_the_training(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    studio = cp.studio_for(data)
    train_reward_model(studio, cp.PROJECT, "bt")
    before = _versions(data)
    folders = cp.model_folders(data)
    pid = _project_id(studio)
    job_id = jobs.submit(studio, pid, "train-reward", PARAMS, spawn=False)
    seen: list[JobStatus] = []
    original = jobs._Reporter.progress

    def progress(self, stage: str, done: int, total: int) -> None:
        if not seen:  # the user clicks Cancel as soon as the job reports anything
            seen.append(jobs.get(studio, job_id).status)
            jobs.cancel(studio, job_id)
        original(self, stage, done, total)

    monkeypatch.setattr(jobs._Reporter, "progress", progress)

    assert jobs.run(studio, job_id) is JobStatus.cancelled

    assert seen == [JobStatus.running]
    view = jobs.get(studio, job_id)
    assert view.status is JobStatus.cancelled and view.result is None and view.error is None
    assert "active model is unchanged" in view.message
    assert _versions(data) == before == [(1, 1, None)]
    assert cp.model_folders(data) == folders


@pytest.mark.slow
def test_cancel_requested_while_evaluating_still_cancels(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    studio = cp.studio_for(data)
    job_id = jobs.submit(studio, _project_id(studio), "train-reward", PARAMS, spawn=False)
    original = jobs._Reporter.progress

    def progress(self, stage: str, done: int, total: int) -> None:
        if stage == "evaluate" and done == 0:  # Cancel clicked after the fit, before the model is registered
            jobs.cancel(studio, job_id)
        original(self, stage, done, total)

    monkeypatch.setattr(jobs._Reporter, "progress", progress)

    assert jobs.run(studio, job_id) is JobStatus.cancelled

    assert jobs.get(studio, job_id).status is JobStatus.cancelled
    assert _versions(data) == []
    assert cp.model_folders(data) == []


def test_a_job_declared_dead_while_its_worker_stalled_registers_nothing(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the worker stops reporting (suspended, stalled) for longer than STALE_AFTER: the page
    # declares the job dead ("the active model is unchanged"); when the worker wakes up and
    # finishes, its model must not appear after all
    studio = cp.studio_for(data)
    job_id = jobs.submit(studio, _project_id(studio), "train-reward", PARAMS, spawn=False)
    original = jobs._Reporter.progress

    def progress(self, stage: str, done: int, total: int) -> None:
        if stage == "evaluate" and done == 1:  # evaluated; the next step registers the model
            with session_scope(studio.engine, write=True) as session:
                session.get(Job, job_id).heartbeat_at = utcnow() - repo.STALE_AFTER - timedelta(seconds=1)
                repo.expire_stale_jobs(session)
        original(self, stage, done, total)

    monkeypatch.setattr(jobs._Reporter, "progress", progress)
    assert jobs.run(studio, job_id) is JobStatus.failed
    assert "stopped without finishing" in jobs.get(studio, job_id).error
    assert _versions(data) == [] and cp.model_folders(data) == []


@pytest.mark.slow
def test_handler_exception_fails_the_job_and_keeps_the_active_model(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    studio = cp.studio_for(data)
    train_reward_model(studio, cp.PROJECT, "ensemble", config=SMALL)
    before = _versions(data)

    def boom(self, *args, **kwargs):
        raise RuntimeError("simulated crash in fit")

    monkeypatch.setattr(EnsembleBT, "fit", boom)
    job_id = jobs.submit(studio, _project_id(studio), "train-reward", PARAMS, spawn=False)

    assert jobs.run(studio, job_id) is JobStatus.failed

    view = jobs.get(studio, job_id)
    assert view.status is JobStatus.failed and not view.active
    # a bug: one line for the app, which names it as one; the traceback goes to the job's log
    assert view.error == (
        "internal error (RuntimeError: simulated crash in fit); this is a bug: the traceback is in "
        f"the job's log (jobs/{job_id}.log in the data folder)"
    )
    assert "Traceback" not in view.error
    assert view.message == "failed; the active model is unchanged"
    assert view.result is None
    assert _versions(data) == before
    assert model_registry.active_model(studio, _project_id(studio))[0].version == 1


@pytest.mark.slow
def test_training_error_fails_the_job_with_its_message(data: Path) -> None:
    studio = cp.studio_for(data)
    job_id = jobs.submit(
        studio,
        _project_id(studio),
        "train-reward",
        {"project": cp.PROJECT, "kind": "ensemble", "config": {"members": 99}},
        spawn=False,
    )

    assert jobs.run(studio, job_id) is JobStatus.failed
    assert "members must be 1-10" in jobs.get(studio, job_id).error
    assert _versions(data) == []


def _add_running_job(studio, project_id: int, heartbeat_age: timedelta) -> int:
    with session_scope(studio.engine, write=True) as session:
        job = Job(
            project_id=project_id,
            kind="train-reward",
            params=PARAMS,
            status=JobStatus.running,
            started_at=utcnow() - heartbeat_age,
            heartbeat_at=utcnow() - heartbeat_age,
            pid=999_999,
        )
        session.add(job)
        session.flush()
        return job.id


@pytest.mark.slow
def test_job_with_a_stale_heartbeat_is_reported_failed(data: Path) -> None:
    studio = cp.studio_for(data)
    pid = _project_id(studio)
    alive = _add_running_job(studio, pid, timedelta(seconds=5))
    assert jobs.get(studio, alive).status is JobStatus.running
    with session_scope(studio.engine, write=True) as session:
        session.get(Job, alive).status = JobStatus.succeeded

    dead = _add_running_job(studio, pid, timedelta(minutes=5))

    view = jobs.get(studio, dead)
    assert view.status is JobStatus.failed and not view.active
    assert "worker process stopped" in view.error
    assert "active model is unchanged" in view.error
    assert cp.rows(data, "SELECT status, finished_at IS NOT NULL FROM job WHERE id = ?", dead) == [("failed", 1)]
    # the dead job no longer blocks a new one
    assert jobs.submit(studio, pid, "train-reward", PARAMS, spawn=False) > dead


@pytest.mark.slow
def test_latest_also_reports_a_dead_worker(data: Path) -> None:
    studio = cp.studio_for(data)
    pid = _project_id(studio)
    dead = _add_running_job(studio, pid, timedelta(minutes=5))

    view = jobs.latest(studio, pid, "train-reward")

    assert view is not None and view.id == dead and view.status is JobStatus.failed


@pytest.mark.slow
def test_worker_process_runs_the_job_end_to_end(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The worker must get the data folder from the environment submit() gives it, not from ours.
    monkeypatch.delenv("RLHF_DATA_DIR", raising=False)
    monkeypatch.delenv("RLHF_DATABASE_URL", raising=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    studio = cp.studio_for(data)
    pid = _project_id(studio)

    job_id = jobs.submit(studio, pid, "train-reward", PARAMS, spawn=True)

    deadline = time.monotonic() + 120
    view = jobs.get(studio, job_id)
    while view.active and time.monotonic() < deadline:
        time.sleep(0.5)
        view = jobs.get(studio, job_id)
    assert view.status is JobStatus.succeeded, (view.status, view.message, view.error)
    assert view.progress == 1.0 and view.result["version"] == 1
    assert _versions(data) == [(1, 1, job_id)]
    assert model_registry.active_model(studio, pid)[0].version == 1
    [(worker_pid,)] = cp.rows(data, "SELECT pid FROM job WHERE id = ?", job_id)
    assert worker_pid is not None and worker_pid != os.getpid()
    assert list(elsewhere.iterdir()) == []  # nothing written to ./data of the current folder


@pytest.mark.slow
def test_a_worker_the_app_started_withdraws_a_round_on_sigterm(data: Path) -> None:
    # the app's workers (python -m app.jobs) stopped with SIGTERM (kill, a service manager):
    # the round must be withdrawn and the job failed, as for Ctrl-C, not left half done
    import subprocess
    import sys

    studio = cp.studio_for(data)
    train_reward_model(studio, cp.PROJECT, "bt")
    before = _versions(data)
    job_id = jobs.submit(studio, _project_id(studio), "loop-round", {"project": cp.PROJECT}, spawn=False)
    child = (  # the worker is sent SIGTERM once the round's reward model is registered
        "import os, signal, sys\n"
        "import app.services.loop as loop\n"
        "loop.train_policy = lambda *a, **k: os.kill(os.getpid(), signal.SIGTERM)\n"
        "from app.jobs import main\n"
        f"sys.argv = ['app.jobs', '{job_id}']\n"
        "main()\n"
    )
    env = {**os.environ, **studio.settings.as_env()}
    done = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "stopped by a signal" in done.stderr, done.stderr[-2000:]
    view = jobs.get(studio, job_id)
    assert view.status is JobStatus.failed and "the worker was stopped" in view.error
    assert _versions(data) == before  # the round's reward model was withdrawn


@pytest.mark.slow
def test_two_worker_processes_run_every_queued_job_once(data: Path) -> None:
    import subprocess
    import sys

    studio = cp.studio_for(data)
    pid = _project_id(studio)
    with session_scope(studio.engine, write=True) as session:  # four jobs queued at once (as from four projects)
        queued = [repo.create_job(session, pid, "train-reward", PARAMS).id for _ in range(4)]
    env = {**os.environ, **studio.settings.as_env()}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", "--drain", "--poll", "0.2"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=300)[0] for w in workers]

    assert [w.returncode for w in workers] == [0, 0], outputs
    started = [line for out in outputs for line in out.splitlines() if line.endswith(") started")]
    assert sorted(int(line.split()[1][1:]) for line in started) == queued  # each job started once, by one worker
    assert cp.rows(data, "SELECT status, count(*) FROM job GROUP BY status") == [("succeeded", 4)]
    assert sorted(job for _, _, job in _versions(data)) == queued  # four versions, one per job
    [(n_workers,)] = cp.rows(data, "SELECT count(DISTINCT worker_id) FROM job")
    [(stopped,)] = cp.rows(data, "SELECT count(*) FROM worker WHERE stopped_at IS NOT NULL")
    assert 1 <= n_workers <= 2 and stopped == 2
    assert all((data / "jobs" / f"{job}.log").exists() for job in queued)  # each job's own log


@pytest.mark.slow
def test_the_app_starts_no_more_workers_than_its_cap_and_the_rest_wait(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    studio = cp.studio_for(data)
    pid = _project_id(studio)
    monkeypatch.setenv("RLHF_MAX_JOBS", "1")
    spawned: list[list[str]] = []

    class FakeProcess:
        pid = 4242

    monkeypatch.setattr(jobs.subprocess, "Popen", lambda args, **kw: spawned.append(args) or FakeProcess())
    with session_scope(studio.engine, write=True) as session:
        other = repo.create_project(
            session,
            name="other",
            kind=repo.get_project(session, cp.PROJECT).kind,
            env_id=cp.ENV_ID,
            config={},
            guidelines="",
        )
        other_id = other.id

    first = jobs.submit(studio, pid, "train-reward", PARAMS)
    second = jobs.submit(studio, other_id, "train-reward", PARAMS)

    assert len(spawned) == 1 and spawned[0][-2:] == ["--worker", spawned[0][-1]]  # one worker: the cap
    view = jobs.queue(studio)
    assert [j.id for j in view.queued] == [first, second] and view.position(second) == 2
    assert view.workers == 1 and view.max_jobs == 1
    monkeypatch.setenv("RLHF_WORKERS", "external")
    jobs.cancel(studio, first)
    jobs.cancel(studio, second)
    third = jobs.submit(studio, pid, "train-reward", PARAMS)
    assert len(spawned) == 1 and jobs.get(studio, third).status is JobStatus.queued  # left to `rlhf worker`
