"""The worker processes of background jobs (:mod:`app.services.jobs`).

``python -m app.jobs --worker WORKER_ID``: a worker the app started for its queue (the row
it reserved); it runs queued jobs until the queue is empty, then exits.
``python -m app.jobs JOB_ID``: run that one queued job.
"""

from __future__ import annotations

import logging
import signal
import sys

from app.config import Settings, Studio
from app.services.jobs import run, work
from db.models import JobStatus


def _stop(signum: int, frame: object) -> None:
    """SIGTERM (``kill``, a service manager stopping the process group): stop as Ctrl-C does,
    so the running job is marked failed and a loop round withdraws what it registered, instead
    of vanishing midway. (``rlhf worker``, run by a person, finishes its job first instead.)"""
    raise KeyboardInterrupt


def main() -> None:
    # the worker's stderr is its log file (jobs/worker-ID.log in the data folder); each job's
    # lines also go to jobs/JOB_ID.log
    signal.signal(signal.SIGTERM, _stop)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    studio = Studio(Settings.from_env())
    try:
        if len(sys.argv) == 3 and sys.argv[1] == "--worker":
            report = work(studio, worker_id=int(sys.argv[2]), drain=True)
            raise SystemExit(0 if all(s is JobStatus.succeeded for s in report.jobs.values()) else 1)
        job_id = int(sys.argv[1])
        raise SystemExit(0 if run(studio, job_id) is JobStatus.succeeded else 1)
    except KeyboardInterrupt:  # SIGTERM or Ctrl-C: the running job was marked failed (and a round withdrawn)
        logging.getLogger(__name__).warning("worker stopped by a signal; its running job was marked failed")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
