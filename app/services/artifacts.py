"""Model and checkpoint folders: written whole or not at all, and removed if never registered.

Training use cases write their result to a fresh folder first and register it in the
database afterwards. :func:`staged_folder` gives the folder under that contract: the files
go to ``NAME.tmp`` and are renamed into place once complete; if anything fails before the
``with`` block ends (the write or the registration), the folder is removed, so the data
folder never holds files that no row points to.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staged_folder(parent: Path, write: Callable[[Path], None]) -> Iterator[Path]:
    """Write a new uniquely named folder under ``parent`` with ``write(tmp)``; yield its final path.

    The body of the ``with`` registers it; on any exception the folder is deleted.
    """
    folder = parent / uuid.uuid4().hex[:12]
    tmp = folder.with_name(folder.name + ".tmp")
    try:
        write(tmp)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        yield folder
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


@contextmanager
def export_folder(out: Path) -> Iterator[Path]:
    """A folder to write an export into, moved to ``out`` when the block ends without error.

    ``out`` must be new or an empty folder (InvalidInputError otherwise: nothing of the user's
    is overwritten); the files go to a hidden sibling first, which a failure removes, so
    ``out`` ends up complete or untouched.
    """
    out = require_new_folder(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
    staging.mkdir()
    try:
        yield staging
        if out.exists():
            out.rmdir()  # empty (checked above)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def require_new_folder(out: Path) -> Path:
    """``out`` (user-expanded) if it is new or an empty folder; InvalidInputError otherwise."""
    from rlhf_core.errors import InvalidInputError

    out = out.expanduser().absolute()
    if out.is_symlink():
        raise InvalidInputError(f"{out} is a symbolic link; export into a new folder (-o NEW_DIR)")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidInputError(f"{out} exists and is not an empty folder; export into a new folder (-o NEW_DIR)")
    return out
