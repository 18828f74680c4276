"""``python -m app.jobs JOB_ID``: the worker process of a background job (:mod:`app.services.jobs`)."""

from __future__ import annotations

import logging
import sys

from app.config import Settings, Studio
from app.services.jobs import run
from db.models import JobStatus


def main() -> None:
    """Run job ``JOB_ID`` (argv[1]) in this process; exit 0 when it succeeded."""
    # the worker's stderr is the job's log file (jobs/ID.log in the data folder)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    job_id = int(sys.argv[1])
    studio = Studio(Settings.from_env())
    raise SystemExit(0 if run(studio, job_id) is JobStatus.succeeded else 1)


if __name__ == "__main__":
    main()
