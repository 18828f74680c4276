"""Background jobs' rows: created, claimed by a worker, reported on, cancelled, finished, expired."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.engine import serialize
from db.models import Job, JobStatus, RewardModelRecord, Worker, as_utc, utcnow

#: A running job whose worker has not beaten for this long, or a queued one that no worker
#: took for this long, is declared dead (failed) when next looked at.
STALE_AFTER = timedelta(seconds=60)
#: The statuses of a job that has not ended.
ACTIVE_JOB_STATUSES = (JobStatus.queued, JobStatus.running)


def get_job(session: Session, job_id: int) -> Job | None:
    """Job ``job_id``, or None."""
    return session.get(Job, job_id)


def latest_job(session: Session, project_id: int | None, kind: str) -> Job | None:
    """The newest job of ``kind`` for a project (None: jobs of no project)."""
    return session.scalar(
        select(Job).where(Job.project_id == project_id, Job.kind == kind).order_by(Job.id.desc()).limit(1)
    )


def active_job(session: Session, project_id: int | None, kind: str) -> Job | None:
    """The project's job of ``kind`` that has not ended, if any."""
    return session.scalar(
        select(Job).where(Job.project_id == project_id, Job.kind == kind, Job.status.in_(ACTIVE_JOB_STATUSES))
    )


def create_job(session: Session, project_id: int | None, kind: str, params: dict[str, Any]) -> Job:
    """A new queued job."""
    job = Job(project_id=project_id, kind=kind, params=params, message="waiting for a worker")
    session.add(job)
    session.flush()
    return job


def create_job_unless_active(
    session: Session, project_id: int | None, kind: str, params: dict[str, Any]
) -> tuple[Job, bool]:
    """A new queued job, unless one of ``kind`` is active for the project: (that job, False).

    Check and insert happen under one lock, so two submissions at once (two admins, two
    tabs) create one job, on PostgreSQL as on SQLite."""
    serialize(session, f"jobs:{kind}:{project_id}")
    running = active_job(session, project_id, kind)
    if running is not None:
        return running, False
    return create_job(session, project_id, kind, params), True


def set_job_pid(session: Session, job_id: int, pid: int) -> None:
    """Record the worker process of a job, unless the worker already did."""
    job = session.get(Job, job_id)
    if job is not None and job.pid is None:
        job.pid = pid


def fail_job(session: Session, job_id: int, error: str) -> None:
    """End a job as failed with ``error`` (e.g. its worker could not start)."""
    job = session.get(Job, job_id)
    if job is not None:
        job.status, job.finished_at, job.error = JobStatus.failed, utcnow(), error


def request_cancel(session: Session, job_id: int) -> None:
    """Ask a job to stop; a queued one is cancelled at once. A job that has ended is left alone."""
    job = session.get(Job, job_id)
    if job is None or job.status not in ACTIVE_JOB_STATUSES:
        return
    job.cancel_requested = True
    job.message = "cancelling..."
    if job.status is JobStatus.queued:
        job.status, job.finished_at = JobStatus.cancelled, utcnow()


def start_job(session: Session, job_id: int, pid: int) -> tuple[str, dict[str, Any]] | None:
    """Claim a queued job for worker ``pid``: mark it running; its (kind, params), or None if it is
    not queued (taken, cancelled or gone)."""
    job = session.get(Job, job_id)
    if job is None or job.status is not JobStatus.queued:
        return None
    job.status, job.started_at, job.heartbeat_at = JobStatus.running, utcnow(), utcnow()
    job.pid, job.message = pid, "starting"
    return job.kind, dict(job.params)


def report_progress(session: Session, job_id: int, progress: float, message: str) -> bool:
    """Record a running job's progress (never backwards) and a heartbeat; whether cancel was asked."""
    job = session.get(Job, job_id)
    if job is None:
        return False
    job.progress = max(job.progress, progress)
    job.message = message
    job.heartbeat_at = utcnow()
    return bool(job.cancel_requested)


def heartbeat(session: Session, job_id: int) -> None:
    """The worker is alive."""
    job = session.get(Job, job_id)
    if job is not None:
        job.heartbeat_at = utcnow()


def cancel_requested(session: Session, job_id: int) -> bool:
    """Whether the job was asked to stop."""
    job = session.get(Job, job_id)
    return bool(job and job.cancel_requested)


def finish_job(
    session: Session, job_id: int, status: JobStatus, result: dict[str, Any] | None, error: str | None, message: str
) -> JobStatus:
    """Record how a running job ended; returns the job's final status (a job declared dead
    meanwhile keeps that verdict)."""
    job = session.get(Job, job_id)
    if job is None:
        return JobStatus.failed
    if job.status is not JobStatus.running:
        return job.status
    job.status, job.result, job.error, job.message = status, result, error, message
    job.finished_at = utcnow()
    if status is JobStatus.succeeded:
        job.progress = 1.0
    return status


def may_register(session: Session, job_id: int) -> bool:
    """Whether a job may still register what it made (a model, a checkpoint, pairs): it is
    running and nobody asked it to stop. A worker declared dead (no heartbeat: suspended,
    stalled) that wakes up, or one whose job was cancelled, must not change the project
    after the job's row says it did not."""
    serialize(session, f"job:{job_id}")  # against an expiry deciding on this job meanwhile (PostgreSQL)
    job = session.get(Job, job_id, populate_existing=True)
    return job is not None and job.status is JobStatus.running and not job.cancel_requested


def note_reward_before(session: Session, job_id: int, version: int | None) -> None:
    """Record which reward model version was active when a job started that registers one
    midway (a loop round): if its worker dies before the job ends, the expiry sets the job's
    model aside and makes this version active again (:func:`expire_stale_jobs`)."""
    job = session.get(Job, job_id)
    if job is not None:
        job.result = {**(job.result or {}), "reward_before": version}


def _set_aside_reward_models(session: Session, job: Job) -> str:
    """What a dead job's reward models become, in words: a job that noted the version active
    before it (:func:`note_reward_before`) has its active model set aside (kept, inactive)
    and that version made active again; models of other jobs are kept."""
    made = list(
        session.scalars(
            select(RewardModelRecord).where(RewardModelRecord.job_id == job.id).order_by(RewardModelRecord.version)
        )
    )
    if not made:
        return "the active model is unchanged"
    versions = ", ".join(str(r.version) for r in made)
    before = (job.result or {}).get("reward_before", False)
    active = [r for r in made if r.active]
    if before is False or not active:  # a job that registers only at its end: its model is whole
        return f"reward model version {versions} it registered is kept"
    for record in active:
        record.active = False
    if before is not None:
        previous = session.scalar(
            select(RewardModelRecord).where(
                RewardModelRecord.project_id == job.project_id, RewardModelRecord.version == before
            )
        )
        if previous is not None:
            previous.active = True
            return f"the round's reward model (version {versions}) was set aside; version {before} is active again"
    return f"the round's reward model (version {versions}) was set aside; no model is active"


def is_stale(job: Job, workers_alive: bool = False) -> bool:
    """An active job whose worker stopped beating (running), or a queued one that waited
    ``STALE_AFTER`` while no worker was alive to take it (``workers_alive`` False)."""
    limit = utcnow() - STALE_AFTER
    if job.status is JobStatus.running:
        beat = as_utc(job.heartbeat_at)
        return beat is None or beat < limit
    created = as_utc(job.created_at)
    return job.status is JobStatus.queued and not workers_alive and created is not None and created < limit


def workers_seen_recently(session: Session) -> bool:
    """Whether any worker beat or stopped within ``STALE_AFTER``: a worker being restarted (stopped
    a moment ago, the next one starting) does not leave the queue orphaned."""
    from sqlalchemy import func

    limit = utcnow() - STALE_AFTER
    beat = session.scalar(select(func.max(Worker.heartbeat_at)))
    stopped = session.scalar(select(func.max(Worker.stopped_at)))
    return any(t is not None and as_utc(t) >= limit for t in (beat, stopped))


def expire_stale_jobs(session: Session) -> None:
    """Mark failed the jobs whose worker died (no heartbeat), and queued jobs that waited
    ``STALE_AFTER`` while no worker at all was seen (none alive, none stopped lately)."""
    alive = workers_seen_recently(session)
    for job in session.scalars(select(Job).where(Job.status.in_(ACTIVE_JOB_STATUSES))):
        if not is_stale(job, alive):
            continue
        if job.status is JobStatus.running:
            # one decision at a time per job: a registering transaction (may_register) holds the
            # same lock until it commits, so its model is seen here (set aside or kept) or never made
            serialize(session, f"job:{job.id}")
            session.refresh(job)
            if job.status is not JobStatus.running or not is_stale(job, alive):
                continue
            job.error = (
                "the worker process stopped without finishing (crashed or killed); "
                f"{_set_aside_reward_models(session, job)}"
            )
        else:
            job.error = (
                "no worker took the job: none is running (start one with `rlhf worker`, or see the log in the "
                "data folder's jobs/ if the app started one) and submit again"
            )
        job.status, job.finished_at = JobStatus.failed, utcnow()


# --- workers ------------------------------------------------------------------------------------


def register_worker(session: Session, host: str, pid: int | None, *, spawned: bool = False) -> int:
    """A new worker row (alive from now); its id."""
    worker = Worker(host=host, pid=pid, spawned=spawned)
    session.add(worker)
    session.flush()
    return worker.id


def worker_heartbeat(session: Session, worker_id: int, pid: int | None = None) -> None:
    """The worker is alive (and, once started, its process id)."""
    worker = session.get(Worker, worker_id)
    if worker is not None:
        worker.heartbeat_at = utcnow()
        if pid is not None:
            worker.pid = pid


def stop_worker(session: Session, worker_id: int) -> None:
    """The worker exited."""
    worker = session.get(Worker, worker_id)
    if worker is not None and worker.stopped_at is None:
        worker.stopped_at = utcnow()


def live_workers(session: Session) -> list[Worker]:
    """Workers that have not stopped and beat within ``STALE_AFTER``, oldest first."""
    return list(
        session.scalars(
            select(Worker)
            .where(Worker.stopped_at.is_(None), Worker.heartbeat_at >= utcnow() - STALE_AFTER)
            .order_by(Worker.id)
        )
    )


def running_jobs(session: Session) -> list[Job]:
    """Jobs running now, oldest first."""
    return list(session.scalars(select(Job).where(Job.status == JobStatus.running).order_by(Job.id)))


def queued_jobs(session: Session) -> list[Job]:
    """Jobs waiting for a worker, in the order workers take them."""
    return list(session.scalars(select(Job).where(Job.status == JobStatus.queued).order_by(Job.id)))


def claim_next_job(session: Session, worker_id: int, pid: int) -> tuple[int, str, dict[str, Any]] | None:
    """Take the oldest queued job for worker ``worker_id`` (process ``pid``): mark it running;
    (id, kind, params), or None when the queue is empty.

    PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so workers that claim at once take different jobs
    without waiting on each other; SQLite: the write transaction holds the database's lock.
    """
    job = session.scalar(
        select(Job).where(Job.status == JobStatus.queued).order_by(Job.id).limit(1).with_for_update(skip_locked=True)
    )
    if job is None:
        return None
    job.status, job.started_at, job.heartbeat_at = JobStatus.running, utcnow(), utcnow()
    job.pid, job.worker_id, job.message = pid, worker_id, "starting"
    worker_heartbeat(session, worker_id)
    return job.id, job.kind, dict(job.params)


def stop_worker_if_idle(session: Session, worker_id: int) -> bool:
    """A draining worker's last look: stop it unless jobs are queued, under the lock that
    :func:`reserve_workers` takes, so a job submitted meanwhile either finds this worker
    stopped (and gets a new one) or is seen here (and run)."""
    serialize(session, "jobs:workers")
    if queued_jobs(session):
        return False
    stop_worker(session, worker_id)
    return True


def reserve_workers(session: Session, host: str, cap: int) -> list[int]:
    """Rows for the workers the app should start now: one per queued job that no idle live
    worker will take, while fewer than ``cap`` workers are alive. Serialized, so two
    submissions at once never start more than ``cap`` between them."""
    serialize(session, "jobs:workers")
    live = live_workers(session)
    busy = {job.worker_id for job in running_jobs(session)}
    idle = sum(1 for w in live if w.id not in busy)
    want = min(len(queued_jobs(session)) - idle, cap - len(live))
    return [register_worker(session, host, None, spawned=True) for _ in range(max(0, want))]
