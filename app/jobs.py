"""Background jobs: long work in a separate process, its state in the database.

The app submits a job (a row) and starts ``python -m app.jobs JOB_ID`` detached from the
Streamlit process, so a page reload or a closed tab does not stop it. The worker writes
progress and a heartbeat to the row; the app polls the row; *Cancel* sets
``cancel_requested``, which the worker's training loop polls between steps. A job whose
worker died (no heartbeat for :data:`STALE_AFTER`) is marked failed when next looked at.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.config import Settings, Studio
from app.errors import USER_ERRORS
from db.engine import session_scope
from db.models import Job, JobStatus, utcnow
from db.repo import as_utc
from rlhf_core.errors import StudioError

STALE_AFTER = timedelta(seconds=60)
_ACTIVE = (JobStatus.queued, JobStatus.running)


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
        return self.status in _ACTIVE


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
    from app.services.policies import train_policy

    result = train_policy(
        studio,
        params["project"],
        params.get("reward", "active"),
        steps=params.get("steps"),
        encoder=params.get("encoder"),
        seed=int(params.get("seed", 0)),
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

    result = run_round(
        studio,
        params["project"],
        number=int(params.get("round", 1)),
        seed=int(params.get("seed", 0)),
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
        on_step=lambda done, total, metrics: progress("fit", done, total),
        should_stop=should_stop,
    )
    return {**result.to_json(), "dataset": params.get("dataset", "")}


HANDLERS: dict[str, Handler] = {
    "train-reward": _train_reward,
    "train-policy": _train_policy,
    "loop-round": _loop_round,  # retrain reward and policy, queue the policy's clips (autopilot)
    "train-classifier": _train_classifier,  # not tied to a project: project_id None
}


# --- the app's side ---------------------------------------------------------------------------


def submit(studio: Studio, project_id: int | None, kind: str, params: dict[str, Any], *, spawn: bool = True) -> int:
    """Record a job and start its worker process; refuses a second active job of a kind per project
    (``project_id`` None: jobs that belong to no project, such as classifiers)."""
    if kind not in HANDLERS:
        raise JobError(f"unknown job kind {kind!r}")
    with session_scope(studio.engine, write=True) as session:
        _expire_stale(session)
        running = session.scalar(
            select(Job).where(Job.project_id == project_id, Job.kind == kind, Job.status.in_(_ACTIVE))
        )
        if running is not None:
            raise JobError(f"job #{running.id} ({kind}) is still {running.status.value} for this project")
        job = Job(project_id=project_id, kind=kind, params=params, message="waiting for a worker")
        session.add(job)
        session.flush()
        job_id = job.id
    if spawn:
        env = {**os.environ, **studio.settings.as_env()}
        log_path = job_log(studio, job_id)
        try:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with log_path.open("ab") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "app.jobs", str(job_id)],
                    env=env,
                    start_new_session=True,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        except OSError as exc:
            with session_scope(studio.engine, write=True) as session:
                row = session.get(Job, job_id)
                assert row is not None
                row.status, row.finished_at = JobStatus.failed, utcnow()
                row.error = f"could not start the worker process: {exc}"
            raise JobError(f"could not start the worker process: {exc}") from exc
        with session_scope(studio.engine, write=True) as session:
            row = session.get(Job, job_id)
            if row is not None and row.pid is None:
                row.pid = proc.pid
    return job_id


def _read(studio: Studio, find: Callable[[Any], Job | None]) -> Job | None:
    """Read a job; only when it looks stale, take the write lock to mark it failed."""
    with session_scope(studio.engine) as session:
        job = find(session)
        stale = job is not None and _is_stale(job)
    if not stale:
        return job
    with session_scope(studio.engine, write=True) as session:
        _expire_stale(session)
        return find(session)


def job_log(studio: Studio, job_id: int) -> Path:
    """Where a job's worker writes its output."""
    return studio.settings.data_dir / "jobs" / f"{job_id}.log"


def get(studio: Studio, job_id: int) -> JobView:
    """The job's current state (a dead worker's job is marked failed)."""
    job = _read(studio, lambda session: session.get(Job, job_id))
    if job is None:
        raise JobError(f"no job #{job_id}")
    return _view(job)


def latest(studio: Studio, project_id: int | None, kind: str) -> JobView | None:
    """The newest job of a kind for a project."""
    job = _read(
        studio,
        lambda session: session.scalar(
            select(Job).where(Job.project_id == project_id, Job.kind == kind).order_by(Job.id.desc()).limit(1)
        ),
    )
    return None if job is None else _view(job)


def cancel(studio: Studio, job_id: int) -> None:
    """Ask a job to stop; a queued job is cancelled at once."""
    with session_scope(studio.engine, write=True) as session:
        job = session.get(Job, job_id)
        if job is None or job.status not in _ACTIVE:
            return
        job.cancel_requested = True
        job.message = "cancelling..."
        if job.status is JobStatus.queued:
            job.status, job.finished_at = JobStatus.cancelled, utcnow()


def _is_stale(job: Job) -> bool:
    """An active job whose worker stopped beating (running) or never started (queued)."""
    limit = utcnow() - STALE_AFTER
    if job.status is JobStatus.running:
        beat = as_utc(job.heartbeat_at)
        return beat is None or beat < limit
    created = as_utc(job.created_at)
    return job.status is JobStatus.queued and created is not None and created < limit


def _expire_stale(session: Any) -> None:
    """Mark failed the jobs whose worker died (no heartbeat) or never started."""
    for job in session.scalars(select(Job).where(Job.status.in_(_ACTIVE))):
        if not _is_stale(job):
            continue
        if job.status is JobStatus.running:
            job.error = (
                "the worker process stopped without finishing (crashed or killed); the active model is unchanged"
            )
        else:
            job.error = "the worker process never started; see its log in the data folder's jobs/ and submit again"
        job.status, job.finished_at = JobStatus.failed, utcnow()


# --- the worker's side ------------------------------------------------------------------------


#: Share of a job's progress bar each stage fills, so the bar only moves forward.
STAGE_SPANS = {"load": (0.0, 0.1), "fit": (0.1, 0.9), "train": (0.1, 0.9), "evaluate": (0.9, 1.0)}
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
        with session_scope(self.studio.engine, write=True) as session:
            job = session.get(Job, self.job_id)
            assert job is not None
            job.progress = max(job.progress, low + (high - low) * (done / total if total else 0.0))
            job.message = f"{stage}: {done}/{total}"
            job.heartbeat_at = utcnow()
            self.cancelled = job.cancel_requested

    def beat_until(self, stop: threading.Event) -> None:
        """Heartbeat while a long step (e.g. a scikit-learn fit) reports no progress."""
        while not stop.wait(HEARTBEAT_EVERY_S):
            with session_scope(self.studio.engine, write=True) as session:
                job = session.get(Job, self.job_id)
                if job is not None:
                    job.heartbeat_at = utcnow()

    def should_stop(self) -> bool:
        if time.monotonic() - self.last >= 0.5:
            with session_scope(self.studio.engine) as session:
                job = session.get(Job, self.job_id)
                self.cancelled = bool(job and job.cancel_requested)
        return self.cancelled


def run(studio: Studio, job_id: int) -> JobStatus:
    """Run job ``job_id`` in this process and record how it ended."""
    from rlhf_core.dqn import TrainingCancelledError
    from rlhf_core.reward_models import FitCancelledError

    with session_scope(studio.engine, write=True) as session:
        job = session.get(Job, job_id)
        if job is None or job.status is not JobStatus.queued:
            return job.status if job else JobStatus.failed
        job.status, job.started_at, job.heartbeat_at = JobStatus.running, utcnow(), utcnow()
        job.pid, job.message = os.getpid(), "starting"
        kind, params = job.kind, dict(job.params)
    reporter = _Reporter(studio, job_id)
    status, result, error, message = JobStatus.succeeded, None, None, "done"
    stop_beating = threading.Event()
    threading.Thread(target=reporter.beat_until, args=(stop_beating,), daemon=True).start()
    try:
        result = HANDLERS[kind](studio, params, reporter.progress, reporter.should_stop, job_id)
    except (FitCancelledError, TrainingCancelledError):
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
        traceback.print_exc(file=sys.stderr)
    finally:
        stop_beating.set()
    with session_scope(studio.engine, write=True) as session:
        job = session.get(Job, job_id)
        assert job is not None
        if job.status is not JobStatus.running:  # declared dead meanwhile: do not overwrite that
            return job.status
        job.status, job.result, job.error, job.message = status, result, error, message
        job.finished_at = utcnow()
        if status is JobStatus.succeeded:
            job.progress = 1.0
    return status


def main() -> None:
    """``python -m app.jobs JOB_ID``: the worker process."""
    job_id = int(sys.argv[1])
    studio = Studio(Settings.from_env())
    raise SystemExit(0 if run(studio, job_id) is JobStatus.succeeded else 1)


if __name__ == "__main__":
    main()
