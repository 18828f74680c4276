"""One rule for the names of projects and annotators, applied by every command and page.

Names are data: they come from URLs, forms, files and the command line, and are shown back
as plain text. A valid name is 1-100 characters after surrounding white space is removed,
in Unicode NFC form, without control, format (e.g. bidirectional overrides), separator-line
or surrogate characters. Annotator names that the studio itself uses (``import`` for
imported labels, ``teacher:NAME`` for scripted teachers) are refused for people.
"""

from __future__ import annotations

import unicodedata

from db.errors import InvalidNameError

MAX_NAME_LENGTH = 100
"""Longest name, in characters (the columns are ``String(100)``)."""
IMPORT_ANNOTATOR = "import"
"""The annotator that imported, already labeled pairs are recorded under."""
TEACHER_PREFIX = "teacher:"
"""Scripted teachers label as ``teacher:NAME``."""

#: Unicode categories refused anywhere in a name: control, format, surrogate, private use,
#: unassigned, line and paragraph separators.
_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def _check(name: object, what: str) -> str:
    if not isinstance(name, str):
        raise InvalidNameError(f"a {what} name must be text, got {type(name).__name__}")
    name = unicodedata.normalize("NFC", name.strip())
    if not name:
        raise InvalidNameError(f"a {what} name cannot be empty; give one of 1 to {MAX_NAME_LENGTH} characters")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidNameError(
            f"a {what} name has at most {MAX_NAME_LENGTH} characters, got {len(name)}; choose a shorter one"
        )
    for position, char in enumerate(name, start=1):
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            raise InvalidNameError(
                f"a {what} name cannot contain control or invisible characters "
                f"(U+{ord(char):04X} at character {position}); use letters, digits, spaces and punctuation"
            )
    return name


def project_name(name: object) -> str:
    """``name`` as a project name (stripped, NFC), or InvalidNameError saying what to change."""
    return _check(name, "project")


def annotator_name(name: object, *, reserved_ok: bool = False) -> str:
    """``name`` as an annotator name, or InvalidNameError.

    People cannot take the studio's own annotator names (``import``, ``teacher:*``);
    ``reserved_ok=True`` is for the importer and the scripted teachers that use them.
    """
    name = _check(name, "annotator")
    if not reserved_ok and (name.casefold() == IMPORT_ANNOTATOR or name.casefold().startswith(TEACHER_PREFIX)):
        raise InvalidNameError(
            f"the annotator name {name!r} is reserved for the studio's own labels "
            f"({IMPORT_ANNOTATOR!r} for imported pairs, '{TEACHER_PREFIX}NAME' for scripted teachers); choose another"
        )
    return name
