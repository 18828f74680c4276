"""Errors caused by input or data that a person can fix; light to import (no torch, no numpy).

Front ends catch :class:`StudioError` (with ``LookupError`` and ``ValueError``) and show the
message, which says what is wrong and what to do, instead of a traceback.
"""


class StudioError(RuntimeError):
    """Base of the errors whose message is meant for the person using the tool."""


class DataFileError(StudioError):
    """A bulk-data file that is missing or unreadable, with the path and what to do."""


class EncoderUnavailableError(StudioError):
    """An encoder whose code or weights are not installed, with what to do about it."""
