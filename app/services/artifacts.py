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
