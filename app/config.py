"""Where the studio keeps its data: settings from the environment and the command line.

``RLHF_DATA_DIR`` (default ``./data``) holds bulk files and, unless ``RLHF_DATABASE_URL``
names another database, the SQLite label store ``rlhf.db``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from sqlalchemy import Engine

from db.engine import StoreAccessError, make_engine, parse_database_url, sqlite_url

DATA_DIR_ENV = "RLHF_DATA_DIR"
DATABASE_URL_ENV = "RLHF_DATABASE_URL"


@dataclass(frozen=True)
class Settings:
    """Locations of the data folder and the database."""

    data_dir: Path
    """Folder of bulk data (trajectories, frames, clips, models); absolute."""
    database_url: str
    """SQLAlchemy URL of the label store."""

    @classmethod
    def from_env(cls, data_dir: str | Path | None = None, database_url: str | None = None) -> Settings:
        """Settings from arguments, else the environment, else the defaults."""
        given = Path(data_dir or os.environ.get(DATA_DIR_ENV) or "data")
        try:
            folder = given.expanduser().resolve()
        except RuntimeError as exc:  # "~nosuchuser/...": no such home folder
            raise StoreAccessError(
                f"the data folder {given} cannot be found ({exc}); "
                f"give an existing path (--data-dir or {DATA_DIR_ENV})",
                public="the data folder cannot be found; fix the server's settings",
            ) from exc
        url = database_url or os.environ.get(DATABASE_URL_ENV) or sqlite_url(folder / "rlhf.db")
        return cls(data_dir=folder, database_url=url)

    def as_env(self) -> dict[str, str]:
        """Environment variables that give a child process these settings."""
        return {DATA_DIR_ENV: str(self.data_dir), DATABASE_URL_ENV: self.database_url}


class Studio:
    """Settings plus the engine built from them: what every use case needs."""

    _shared: dict[tuple[str, str], Studio] = {}

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @classmethod
    def for_paths(cls, data_dir: str, database_url: str) -> Studio:
        """One shared studio per (data folder, database) in this process."""
        key = (data_dir, database_url)
        if key not in cls._shared:
            cls._shared[key] = cls(Settings(Path(data_dir), database_url))
        return cls._shared[key]

    @cached_property
    def engine(self) -> Engine:
        """The label store, migrated to the newest schema on first use.

        Raises StoreAccessError (one line with the fix) when the data folder or the database
        cannot be used; nothing is created or migrated then.
        """
        url = parse_database_url(self.settings.database_url)
        check_data_dir(self.settings.data_dir)
        engine = make_engine(url)
        ensure_data_dir(self.settings.data_dir)
        return engine

    def path(self, relative: str) -> Path:
        """Absolute path of a file recorded relative to the data folder."""
        return self.settings.data_dir / relative

    def relative(self, path: Path) -> str:
        """A path inside the data folder, as recorded in the database."""
        return path.relative_to(self.settings.data_dir).as_posix()


_CHOOSE = f"choose another data folder (--data-dir or {DATA_DIR_ENV})"
_PUBLIC = "the studio's data folder cannot be used; ask whoever runs the server to fix it"


def check_data_dir(folder: Path) -> None:
    """StoreAccessError unless the data folder is, or can be created as, a folder this user
    writes to. Creates nothing."""
    existing = next((p for p in [folder, *folder.parents] if p.exists()), None)
    if existing is None:
        return
    if not existing.is_dir():
        blocker = next(p for p in reversed([folder, *folder.parents]) if p.exists() and not p.is_dir())
        where = "is a file" if blocker == folder else f"cannot be created: {blocker} is a file"
        raise StoreAccessError(f"the data folder {folder} {where}, not a folder; {_CHOOSE}", public=_PUBLIC)
    if not os.access(existing, os.W_OK | os.X_OK):
        if existing == folder:
            raise StoreAccessError(
                f"the data folder {folder} is read-only for this user; make it writable (chmod u+w {folder}, "
                f"or run as its owner) or {_CHOOSE}",
                public=_PUBLIC,
            )
        raise StoreAccessError(
            f"cannot create the data folder {folder}: {existing} is read-only for this user; create the "
            f"folder with write permission for this user, or {_CHOOSE}",
            public=_PUBLIC,
        )


def ensure_data_dir(folder: Path) -> None:
    """Create the data folder if needed; StoreAccessError when it cannot be, or is not writable."""
    check_data_dir(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a race with another process, or a file system that refuses
        raise StoreAccessError(
            f"cannot create the data folder {folder}: {exc.strerror}; {_CHOOSE}", public=_PUBLIC
        ) from exc
    check_data_dir(folder)
