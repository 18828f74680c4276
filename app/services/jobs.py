"""Background jobs: long work in worker processes, its state in the database.

Submitting a job writes a queued row. Worker processes claim queued jobs from the store,
oldest first (``db.repo.claim_next_job``: ``SKIP LOCKED`` on PostgreSQL), run them, and
beat while alive; any number of them may run, on any machine that shares the database and
the data folder (``rlhf worker``). By default the app also starts workers itself, detached
from the Streamlit process (so a reload or a closed tab does not stop a job), but never more
than ``RLHF_MAX_JOBS`` alive at once (default 2): further jobs wait in the queue, which the
pages show. ``RLHF_WORKERS=external`` stops the app from starting any (a deployment with
dedicated workers). The worker writes progress and a heartbeat to the job's row; the app
polls the row; *Cancel* sets ``cancel_requested``, which the training loop polls between
steps. A running job whose worker died (no heartbeat for ``db.repo.jobs.STALE_AFTER``), or
a queued one while no worker is alive, is marked failed when next looked at. The rows are
read and written through :mod:`db.repo.jobs`; ``app/jobs.py`` is the spawned worker's entry point.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.config import Studio
from app.errors import USER_ERRORS
from db import repo
from db.engine import session_scope
from db.models import Job, JobStatus
from rlhf_core.callbacks import TrainingCancelledError
from rlhf_core.errors import InvalidInputError, StudioError
from rlhf_core.threads import configured_threads

logger = logging.getLogger(__name__)


class JobError(StudioError):
    """A job that cannot be submitted (e.g. one is already running for the project)."""


@dataclass(frozen=True)
class JobView:
    """What the app shows of a job."""

    id: int
    kind: str
    status: JobStatus
    progress: float
    message: str
    error: str | None
    result: dict[str, Any] | None
    cancel_requested: bool

    @property
    def active(self) -> bool:
        return self.status in repo.ACTIVE_JOB_STATUSES


def _view(job: Job) -> JobView:
    return JobView(job.id, job.kind, job.status, job.progress, job.message, job.error, job.result, job.cancel_requested)


# --- handlers: what each kind of job does ---------------------------------------------------

Handler = Callable[[Studio, dict[str, Any], Callable[[str, int, int], None], Callable[[], bool], int], dict[str, Any]]


def _train_reward(
    studio: Studio,
    params: dict[str, Any],
    progress: Callable[[str, int, int], None],
    should_stop: Callable[[], bool],
    job_id: int,
) -> dict[str, Any]:
    from app.services.rewards import train_reward_model

    result = train_reward_model(
        studio,
        params["project"],
        params["kind"],
        config=params.get("config"),
        seed=int(params.get("seed", 0)),
        on_progress=progress,
        should_stop=should_stop,
        job_id=job_id,
        encoder=params.get("encoder"),
        actions=bool(params.get("actions", False)),
        form=params.get("form"),
        min_agreement=params.get("min_agreement"),
        weight_by_agreement=bool(params.get("weight_by_agreement", False)),
        continue_active=not params.get("fresh", False),
    )
    return {
        "version": result.version,
        "kind": result.kind,
        # the scalars, and the accuracy's interval (the page says how much the number means)
        **{k: v for k, v in result.metrics.items() if not isinstance(v, list) or k == "val_accuracy_ci95"},
    }


def _train_policy(
    studio: Studio,
    params: dict[str, Any],
    progress: Callable[[str, int, int], None],
    should_stop: Callable[[], bool],
    job_id: int,
) -> dict[str, Any]:
    from app.services.policies import parse_warm_start, train_policy

    reward = params.get("reward", "active")
    result = train_policy(
        studio,
        params["project"],
        reward,
        steps=params.get("steps"),
        encoder=params.get("encoder"),
        seed=int(params.get("seed", 0)),
        algo=params.get("algo"),
        warm_start=parse_warm_start(params.get("warm_start", "auto"), reward),
        on_progress=progress,
        should_stop=should_stop,
        job_id=job_id,
    )
    return {"version": result.version, **result.metrics}


def _loop_round(
    studio: Studio,
    params: dict[str, Any],
    progress: Callable[[str, int, int], None],
    should_stop: Callable[[], bool],
    job_id: int,
) -> dict[str, Any]:
    from app.services.loop import run_round

    number, seed = params.get("round"), params.get("seed")
    if number is None or seed is None:  # the autopilot's rounds: numbered, and seeded, by the policies so far
        with session_scope(studio.engine) as session:
            before = len(repo.policies(session, repo.get_project(session, params["project"]).id))
        number = before + 1 if number is None else number
        seed = before if seed is None else seed  # each round rolls out other episodes for its clips
    result = run_round(
        studio,
        params["project"],
        number=int(number),
        seed=int(seed),
        steps=params.get("steps"),
        on_progress=progress,
        should_stop=should_stop,
        job_id=job_id,
    )
    return result.to_json()


def _train_classifier(
    studio: Studio,
    params: dict[str, Any],
    progress: Callable[[str, int, int], None],
    should_stop: Callable[[], bool],
    job_id: int,
) -> dict[str, Any]:
    from app.services.classifiers import train_classifier

    path = params.get("path")
    result = train_classifier(
        studio,
        params["kind"],
        params["mode"],
        path=Path(path) if path else None,
        epochs=int(params.get("epochs", 5)),
        seed=int(params.get("seed", 0)),
        lora=params.get("lora"),
        base_model=Path(params["base_model"]) if params.get("base_model") else None,
        on_step=lambda done, total, metrics: progress("fit", done, total),
        should_stop=should_stop,
        job_id=job_id,
    )
    return {**result.to_json(), "dataset": params.get("dataset", "")}


HANDLERS: dict[str, Handler] = {
    "train-reward": _train_reward,
    "train-policy": _train_policy,
    "loop-round": _loop_round,  # retrain reward and policy, queue the policy's clips (autopilot)
    "train-classifier": _train_classifier,  # not tied to a project: project_id None
}


# --- the app's side ---------------------------------------------------------------------------


#: How many workers the app keeps alive at most (it starts one per queued job up to this).
MAX_JOBS_ENV, DEFAULT_MAX_JOBS = "RLHF_MAX_JOBS", 2
#: ``external``: the app starts no worker; ``rlhf worker`` processes run the queue.
WORKERS_ENV = "RLHF_WORKERS"


def max_jobs() -> int:
    """The most workers (so jobs running at once) the app starts: ``RLHF_MAX_JOBS``, default 2."""
    raw = os.environ.get(MAX_JOBS_ENV, "")
    try:
        value = int(raw) if raw else DEFAULT_MAX_JOBS
    except ValueError:
        raise JobError(f"{MAX_JOBS_ENV} must be a whole number of worker processes, got {raw!r}") from None
    if value < 1:
        raise JobError(f"{MAX_JOBS_ENV} must be at least 1, got {value}")
    return value


def app_starts_workers() -> bool:
    """Whether the app starts workers for its queue (``RLHF_WORKERS`` is not ``external``)."""
    return os.environ.get(WORKERS_ENV, "app").strip().lower() != "external"


def submit(studio: Studio, project_id: int | None, kind: str, params: dict[str, Any], *, spawn: bool = True) -> int:
    """Queue a job, and start a worker for it when none is free and fewer than ``max_jobs()`` are
    alive (``spawn`` False: only queue it); refuses a second active job of a kind per project
    (``project_id`` None: jobs that belong to no project, such as classifiers)."""
    if kind not in HANDLERS:
        raise JobError(f"unknown job kind {kind!r}")
    if spawn and app_starts_workers():
        max_jobs()  # a bad RLHF_MAX_JOBS is refused before anything is queued
    try:
        configured_threads()  # so is a bad RLHF_THREADS, which the job would meet in its worker
    except InvalidInputError as exc:
        raise JobError(str(exc)) from exc
    with session_scope(studio.engine, write=True) as session:
        repo.expire_stale_jobs(session)
        job, created = repo.create_job_unless_active(session, project_id, kind, params)
        if not created:
            raise JobError(f"job #{job.id} ({kind}) is still {job.status.value} for this project")
        job_id = job.id
    if spawn and app_starts_workers():
        start_workers(studio)
    return job_id


def start_workers(studio: Studio) -> list[int]:
    """Start worker processes for queued jobs that no live worker is free to take, up to
    ``max_jobs()`` live workers in all; the new workers' ids. Each exits when the queue is empty."""
    cap = max_jobs()
    with session_scope(studio.engine, write=True) as session:
        new = repo.reserve_workers(session, socket.gethostname(), cap)
    started: list[int] = []
    for n, worker_id in enumerate(new):
        log_path = worker_log(studio, worker_id)
        env = {**os.environ, **studio.settings.as_env()}
        try:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with log_path.open("ab") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "app.jobs", "--worker", str(worker_id)],
                    env=env,
                    start_new_session=True,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        except OSError as exc:
            with session_scope(studio.engine, write=True) as session:
                for unused in new[n:]:  # this row and the ones after it: no process will beat for them
                    repo.stop_worker(session, unused)
            raise JobError(
                f"could not start a worker process: {exc}; the job waits in the queue for a worker "
                "(start one with `rlhf worker`)"
            ) from exc
        with session_scope(studio.engine, write=True) as session:
            repo.worker_heartbeat(session, worker_id, proc.pid)
        started.append(worker_id)
    return started


@dataclass(frozen=True)
class QueueView:
    """What the pages show of the job queue."""

    running: list[JobView]
    queued: list[JobView]
    workers: int
    """Workers alive now (busy or idle)."""
    max_jobs: int
    app_starts_workers: bool

    def position(self, job_id: int) -> int | None:
        """1 for the next job a free worker takes; None when the job is not queued."""
        ids = [j.id for j in self.queued]
        return ids.index(job_id) + 1 if job_id in ids else None


def queue(studio: Studio) -> QueueView:
    """Running and queued jobs of every project, and how many workers are alive."""
    with session_scope(studio.engine) as session:
        running = [_view(j) for j in repo.running_jobs(session)]
        queued = [_view(j) for j in repo.queued_jobs(session)]
        workers = len(repo.live_workers(session))
    return QueueView(running, queued, workers, max_jobs(), app_starts_workers())


def worker_log(studio: Studio, worker_id: int) -> Path:
    """Where a worker process's own output goes (each job's is in :func:`job_log`)."""
    return studio.settings.data_dir / "jobs" / f"worker-{worker_id}.log"


def _read(studio: Studio, find: Callable[[Any], Job | None]) -> Job | None:
    """Read a job; only when it looks stale, take the write lock to mark it failed."""
    with session_scope(studio.engine) as session:
        job = find(session)
        queued = job is not None and job.status is JobStatus.queued
        running_workers = bool(repo.live_workers(session)) if queued else True
        alive = queued and (running_workers or repo.workers_seen_recently(session))
        stale = job is not None and repo.is_stale(job, alive)
    if queued and not running_workers and app_starts_workers():
        try:  # its worker exited or died (or none was started): start one for the queue
            start_workers(studio)
        except JobError as exc:
            logger.warning("no worker for queued job #%d: %s", job.id, exc)  # type: ignore[union-attr]
    if not stale:
        return job
    with session_scope(studio.engine, write=True) as session:
        repo.expire_stale_jobs(session)
        return find(session)


def job_log(studio: Studio, job_id: int) -> Path:
    """Where a job's worker writes its output."""
    return studio.settings.data_dir / "jobs" / f"{job_id}.log"


def get(studio: Studio, job_id: int) -> JobView:
    """The job's current state (a dead worker's job is marked failed)."""
    job = _read(studio, lambda session: repo.get_job(session, job_id))
    if job is None:
        raise JobError(f"no job #{job_id}")
    return _view(job)


def latest(studio: Studio, project_id: int | None, kind: str) -> JobView | None:
    """The newest job of a kind for a project."""
    job = _read(studio, lambda session: repo.latest_job(session, project_id, kind))
    return None if job is None else _view(job)


def cancel(studio: Studio, job_id: int) -> None:
    """Ask a job to stop; a queued job is cancelled at once."""
    with session_scope(studio.engine, write=True) as session:
        repo.request_cancel(session, job_id)


# --- the worker's side ------------------------------------------------------------------------


#: Share of a job's progress bar each stage fills, so the bar only moves forward.
STAGE_SPANS = {
    "load": (0.0, 0.1),
    "fit": (0.1, 0.9),
    "train": (0.1, 0.9),
    "continue": (0.1, 0.5),  # a warm-started policy; should it fall short of its start, one from scratch too:
    "restart": (0.5, 0.9),
    "evaluate": (0.9, 1.0),
    "rollouts": (0.0, 0.5),  # the policy's clips: its episodes, then the clips rendered from them
    "clips": (0.5, 1.0),
}
#: A loop round's parts ("reward fit", "policy train", "clips render"): each stage's span inside its part's.
ROUND_SPANS = {"reward": (0.0, 0.25), "policy": (0.25, 0.9), "clips": (0.9, 1.0)}
HEARTBEAT_EVERY_S = 10.0


def stage_span(stage: str) -> tuple[float, float]:
    """The share of a job's progress bar that ``stage`` fills."""
    part, _, inner = stage.partition(" ")
    if part in ROUND_SPANS and inner:
        outer_low, outer_high = ROUND_SPANS[part]
        low, high = STAGE_SPANS.get(inner, (0.0, 1.0))
        width = outer_high - outer_low
        return outer_low + width * low, outer_low + width * high
    return STAGE_SPANS.get(stage, (0.0, 1.0))


class _Reporter:
    """Writes progress at most every 0.5 s and answers whether cancel was asked for."""

    def __init__(self, studio: Studio, job_id: int) -> None:
        self.studio, self.job_id = studio, job_id
        self.last = 0.0
        self.cancelled = False

    def progress(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.5 and done < total:
            return
        self.last = now
        low, high = stage_span(stage)
        progress = low + (high - low) * (done / total if total else 0.0)
        with session_scope(self.studio.engine, write=True) as session:
            self.cancelled = repo.report_progress(session, self.job_id, progress, f"{stage}: {done}/{total}")

    def beat_until(self, stop: threading.Event) -> None:
        """Heartbeat while a long step (e.g. a scikit-learn fit) reports no progress."""
        while not stop.wait(HEARTBEAT_EVERY_S):
            try:
                with session_scope(self.studio.engine, write=True) as session:
                    repo.heartbeat(session, self.job_id)
            except Exception:  # a store hiccup: the next beat tries again (a dead thread would look like a dead job)
                logger.warning("job #%d: heartbeat failed", self.job_id, exc_info=True)

    def should_stop(self) -> bool:
        if time.monotonic() - self.last >= 0.5:
            with session_scope(self.studio.engine) as session:
                self.cancelled = repo.cancel_requested(session, self.job_id)
        return self.cancelled


def run(studio: Studio, job_id: int) -> JobStatus:
    """Run queued job ``job_id`` in this process and record how it ended (a job that is not
    queued any more is left alone: its status is returned)."""
    with session_scope(studio.engine, write=True) as session:
        started = repo.start_job(session, job_id, os.getpid())
        if started is None:
            job = repo.get_job(session, job_id)
            return job.status if job else JobStatus.failed
    kind, params = started
    return execute(studio, job_id, kind, params)


def execute(studio: Studio, job_id: int, kind: str, params: dict[str, Any]) -> JobStatus:
    """Run a job this process has claimed (marked running) and record how it ended. Its log
    lines also go to the job's own log file."""
    handler = logging.FileHandler(job_log(studio, job_id)) if job_log(studio, job_id).parent.is_dir() else None
    if handler is not None:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)
    try:
        return _execute(studio, job_id, kind, params)
    finally:
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()


def _execute(studio: Studio, job_id: int, kind: str, params: dict[str, Any]) -> JobStatus:
    logger.info("job #%d (%s) started: %s", job_id, kind, params)
    reporter = _Reporter(studio, job_id)
    status, result, error, message = JobStatus.succeeded, None, None, "done"
    stop_beating = threading.Event()
    threading.Thread(target=reporter.beat_until, args=(stop_beating,), daemon=True).start()
    try:
        result = HANDLERS[kind](studio, params, reporter.progress, reporter.should_stop, job_id)
    except TrainingCancelledError:
        status, message = JobStatus.cancelled, "cancelled; the active model is unchanged, no checkpoint was added"
        if kind == "loop-round":
            message = "cancelled; the round was withdrawn: the active model is unchanged, no checkpoint or pairs added"
    except USER_ERRORS as exc:  # the message says what to do; the app shows it (without server paths)
        status, message = JobStatus.failed, "failed; the active model is unchanged"
        error = str(getattr(exc, "public", exc))
    except Exception as exc:  # a bug: the app shows one line, the traceback goes to the job's log
        status, message = JobStatus.failed, "failed; the active model is unchanged"
        error = (
            f"internal error ({type(exc).__name__}: {exc}); this is a bug: the traceback is in "
            f"the job's log (jobs/{job_id}.log in the data folder)"
        )
        logger.exception("job #%d (%s) failed", job_id, kind)
    except BaseException:  # the worker is stopping (Ctrl-C, SIGTERM): say so, then stop
        with session_scope(studio.engine, write=True) as session:
            repo.finish_job(
                session, job_id, JobStatus.failed, None,
                "the worker was stopped while running the job; the active model is unchanged: submit it again",
                "failed; the active model is unchanged",
            )  # fmt: skip
        raise
    finally:
        stop_beating.set()
    with session_scope(studio.engine, write=True) as session:
        final = repo.finish_job(session, job_id, status, result, error, message)  # keeps a "died" verdict
    logger.info("job #%d (%s) ended: %s (%s)", job_id, kind, final.value, error or message)
    return final


# --- workers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerReport:
    worker_id: int
    jobs: dict[int, JobStatus]
    """Each job the worker ran, and how it ended."""


def work(
    studio: Studio,
    *,
    worker_id: int | None = None,
    drain: bool = False,
    poll_s: float = 2.0,
    max_jobs_run: int | None = None,
    stop: threading.Event | None = None,
    on_job: Callable[[int, str, JobStatus | None], None] | None = None,
) -> WorkerReport:
    """Be a worker: claim queued jobs one at a time and run them, until ``stop`` is set (or, with
    ``drain``, the queue is empty; or ``max_jobs_run`` jobs ran). ``worker_id``: a row the app
    reserved for this process (else one is registered). Beats every ``HEARTBEAT_EVERY_S`` while
    alive, busy or idle. ``on_job(job_id, kind, None)`` when a job starts, with its status when it ends."""
    configured_threads()  # a bad RLHF_THREADS stops the worker before it takes a job, not each job it takes
    stop = stop or threading.Event()
    job_log(studio, 0).parent.mkdir(parents=True, exist_ok=True)
    with session_scope(studio.engine, write=True) as session:
        if worker_id is None:
            worker_id = repo.register_worker(session, socket.gethostname(), os.getpid())
        else:
            repo.worker_heartbeat(session, worker_id, os.getpid())
    alive = threading.Event()

    def beat() -> None:
        while not alive.wait(HEARTBEAT_EVERY_S):
            try:
                with session_scope(studio.engine, write=True) as session:
                    repo.worker_heartbeat(session, worker_id)
            except Exception:  # a store hiccup: the next beat tries again
                logger.warning("worker %d: heartbeat failed", worker_id, exc_info=True)

    threading.Thread(target=beat, daemon=True).start()
    ran: dict[int, JobStatus] = {}
    logger.info("worker %d started (pid %d)", worker_id, os.getpid())
    stopped = False
    failures = 0
    try:
        while not stop.is_set():
            try:
                with session_scope(studio.engine, write=True) as session:
                    repo.expire_stale_jobs(session)
                    claimed = repo.claim_next_job(session, worker_id, os.getpid())
                if claimed is None and drain:
                    with session_scope(studio.engine, write=True) as session:
                        stopped = repo.stop_worker_if_idle(session, worker_id)
                failures = 0
            except USER_ERRORS as exc:  # the store is away (restarting, locked): wait, then look again
                failures += 1
                logger.warning("worker %d: the store did not answer (%s); retrying", worker_id, exc)
                stop.wait(min(60.0, poll_s * 2**failures))
                continue
            if claimed is None:
                if stopped:
                    break
                stop.wait(poll_s)
                continue
            job_id, kind, params = claimed
            if on_job is not None:
                on_job(job_id, kind, None)
            ran[job_id] = execute(studio, job_id, kind, params)
            if on_job is not None:
                on_job(job_id, kind, ran[job_id])
            if max_jobs_run is not None and len(ran) >= max_jobs_run:
                break
    finally:
        alive.set()
        if not stopped:
            try:
                with session_scope(studio.engine, write=True) as session:
                    repo.stop_worker(session, worker_id)
            except Exception:  # the store is away: the missing heartbeat says it in a minute
                logger.warning("worker %d: could not record its stop", worker_id, exc_info=True)
        logger.info("worker %d stopped after %d jobs", worker_id, len(ran))
    return WorkerReport(worker_id, ran)
