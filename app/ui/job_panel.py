"""The progress panel of a background job, shared by the pages that start jobs."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from app.config import Studio
from app.services import jobs
from app.ui import auth, display, state
from db.models import JobStatus


def _cancel(studio: Studio, job_id: int) -> None:
    """on_click: ask a job to stop, if this login may still (the panel is on admin pages)."""
    if auth.still_admin(studio):
        jobs.cancel(studio, job_id)


def job_panel(
    studio: Studio,
    project_id: int | None,
    kind: str,
    *,
    live: bool,
    empty: str | None,
    succeeded: Callable[[jobs.JobView], str],
    cancelled: str,
) -> None:
    """Show the latest job of ``kind``: progress and *Cancel* while it runs, its outcome after.

    The panel is a fragment that reruns every second while ``live`` (the page saw the job
    active); when the job ends the whole page reruns once, so tables and plots show what it
    produced.
    """
    st.fragment(
        lambda: _panel(studio, project_id, kind, empty=empty, succeeded=succeeded, cancelled=cancelled),
        run_every=1.0 if live else None,
    )()


def _panel(
    studio: Studio,
    project_id: int | None,
    kind: str,
    *,
    empty: str | None,
    succeeded: Callable[[jobs.JobView], str],
    cancelled: str,
) -> None:
    job = jobs.latest(studio, project_id, kind)
    watch_key = state.watching_key(kind)
    if job is None:
        if empty:
            st.caption(empty)
        return
    if job.active:
        st.progress(job.progress, text=f"Job #{job.id}: {job.message}")
        if job.status is JobStatus.queued:
            st.caption(_queue_text(studio, job.id))
        st.button(
            "Cancel",
            icon=":material/cancel:",
            on_click=_cancel,
            args=(studio, job.id),
            key=f"cancel-{kind}-{job.id}",
            disabled=job.cancel_requested,
        )
        st.session_state[watch_key] = job.id
        return
    if st.session_state.pop(watch_key, None) == job.id:
        st.rerun()  # the job just ended: refresh the page's tables and plots
    if job.status is JobStatus.succeeded and job.result:
        st.success(succeeded(job))  # built by the page from numbers and escaped names
    elif job.status is JobStatus.failed:
        first, _, rest = (job.error or "").partition("\n")
        display.error(studio, f"Job #{job.id} failed: {first}")
        if rest.strip():
            with st.expander("Details"):
                st.code(display.public(studio, rest.strip()), language=None)
    elif job.status is JobStatus.cancelled:
        st.warning(f"Job #{job.id} was cancelled; {cancelled}")


def _queue_text(studio: Studio, job_id: int) -> str:
    """Where a queued job stands: its place in line, what runs, who will take it."""
    queue = jobs.queue(studio)
    place = queue.position(job_id)
    running = ", ".join(f"#{j.id} {j.kind} ({j.progress:.0%})" for j in queue.running) or "none"
    line = f"Queued: {place if place is not None else '?'} of {len(queue.queued)} in line; running now: {running}. "
    if queue.app_starts_workers:
        return line + f"{queue.workers} worker(s) alive; at most {queue.max_jobs} jobs run at once (RLHF_MAX_JOBS)."
    if queue.workers == 0:
        return line + "No worker is running: start one with `rlhf worker` (this server leaves jobs to workers)."
    return line + f"{queue.workers} worker(s) alive (`rlhf worker`)."
