"""Errors of the label store whose message is meant for the person using the tool.

They live in ``db`` (not in ``rlhf_core.errors``) because ``db`` and ``rlhf_core`` do not
import each other; the front ends catch both families (see ``app.errors.USER_ERRORS``).
"""


class StoreError(RuntimeError):
    """Base of the label store's errors that a person can fix; the message says how."""


class NotFoundError(StoreError, LookupError):
    """A project, query or annotator that does not exist."""


class InvalidNameError(StoreError, ValueError):
    """A project or annotator name that cannot be used, with the rule it breaks."""
