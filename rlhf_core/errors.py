"""Errors caused by input or data that a person can fix; light to import (no torch, no numpy).

Front ends catch :class:`StudioError` (and the label store's ``db.errors.StoreError``) and
show its message, which says what is wrong and what to do, instead of a traceback. Any other
exception is a bug and stays visible as one. Raise the most precise subclass:
:class:`InvalidInputError` for a value a person gave (an option, a setting, a file's
content), :class:`DataFileError` for a bulk-data file.
"""

from __future__ import annotations


class StudioError(RuntimeError):
    """Base of the errors whose message is meant for the person using the tool."""


class InvalidInputError(StudioError, ValueError):
    """A value given by a person (an option, a setting, a line of a file) that cannot be used.

    Also a ``ValueError``, so code that checks arguments the usual way still catches it.
    """


class DataFileError(StudioError):
    """A bulk-data file that is missing or unreadable, with the path and what to do."""


class EncoderUnavailableError(StudioError):
    """An encoder whose code or weights are not installed, with what to do about it."""
