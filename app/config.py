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

from db.engine import make_engine, sqlite_url

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
        folder = Path(data_dir or os.environ.get(DATA_DIR_ENV) or "data").expanduser().resolve()
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
        """The label store, migrated to the newest schema on first use."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        return make_engine(self.settings.database_url)

    def path(self, relative: str) -> Path:
        """Absolute path of a file recorded relative to the data folder."""
        return self.settings.data_dir / relative

    def relative(self, path: Path) -> str:
        """A path inside the data folder, as recorded in the database."""
        return path.relative_to(self.settings.data_dir).as_posix()
