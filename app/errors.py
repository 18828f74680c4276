"""The errors every front end (CLI, pages, job workers) shows as one clear message.

Their messages say what was wrong and what to do; anything else is a bug and keeps its
traceback (the CLI's ``--debug``, the server log).
"""

from __future__ import annotations

from db.errors import StoreError
from rlhf_core.callbacks import TrainingCancelledError
from rlhf_core.envs.registry import EnvError
from rlhf_core.errors import StudioError

USER_ERRORS: tuple[type[Exception], ...] = (StudioError, StoreError, EnvError)
"""Errors caused by the input, the data or the data folder: a message, not a traceback."""

# TrainingCancelledError (a fit stopped on request: Ctrl-C, Cancel; nothing was registered) is
# re-exported for the front ends, which do not import rlhf_core themselves.
__all__ = ["USER_ERRORS", "TrainingCancelledError"]
