"""Clip files: per-item frames and the side-by-side GIF of a query in the order shown.

A query's clip depends only on its two items and their order on screen, so its file name
is derived from the items' frame files and it is rendered at most once per order: ahead of
time when queries are created, or on first use (for instance after the file was deleted).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.config import Studio
from rlhf_core.envs.clips import side_by_side_gif
from rlhf_core.envs.episodes import load_npz, save_npz
from rlhf_core.errors import DataFileError, StudioError
from rlhf_core.fileio import write_bytes_atomic


class ClipUnavailableError(StudioError):
    """A clip that cannot be shown; the message says which file and what to do."""


@dataclass(frozen=True)
class ClipJob:
    """Everything needed to render one clip, picklable for worker processes."""

    left_frames: Path
    right_frames: Path
    out: Path
    fps: float


def save_item_frames(path: Path, frames: np.ndarray, valid: np.ndarray) -> None:
    """Store a segment's rendered frames and validity mask."""
    save_npz(path, frames=frames, valid=valid)


def clip_relpath(left: str | None, right: str | None) -> str:
    """Where the clip of the item whose frames file is ``left`` beside the one of ``right`` lives
    (paths relative to the data folder, as items store them)."""
    if not left or not right:
        raise ClipUnavailableError("this pair has no rendered frames to show")
    folder = Path(left).parent.parent / "clips"
    return (folder / f"{Path(left).stem}__{Path(right).stem}.gif").as_posix()


FRAMES_CACHE_BYTES = 256 * 2**20
"""Decoded frames kept per process while clips are rendered: every item appears in many
pairs, in both orders, and decoding its compressed frames file cost a fifth of a CartPole
project's creation (25 ms an item)."""


class _FramesCache:
    """The most recently used items' decoded frames, up to :data:`FRAMES_CACHE_BYTES` in all,
    keyed by file, inode, size and change time (a rewritten file is read again)."""

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple, tuple[dict[str, np.ndarray], int]] = OrderedDict()
        self._bytes = 0

    def load(self, path: Path) -> dict[str, np.ndarray]:
        try:
            stat = path.stat()
            key = (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
        except OSError:
            return load_npz(path)  # names the missing file
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key][0]
        arrays = load_npz(path)
        size = sum(a.nbytes for a in arrays.values())
        if size <= FRAMES_CACHE_BYTES:
            self._entries[key] = (arrays, size)
            self._bytes += size
            while self._bytes > FRAMES_CACHE_BYTES:
                self._bytes -= self._entries.popitem(last=False)[1][1]
        return arrays

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0


_frames = _FramesCache()


def render_clip(job: ClipJob) -> Path:
    """Render one clip file from two items' frame files (atomic write)."""
    try:
        left, right = _frames.load(job.left_frames), _frames.load(job.right_frames)
        gif = side_by_side_gif(left["frames"], left["valid"], right["frames"], right["valid"], fps=job.fps)
    except (DataFileError, KeyError, ValueError) as exc:
        raise ClipUnavailableError(f"cannot render clip {job.out.name}: {exc}") from exc
    write_bytes_atomic(job.out, gif)
    return job.out


def clip_job(studio: Studio, left: str, right: str, fps: float) -> ClipJob:
    """The rendering job for the item with frames file ``left`` beside the one of ``right``."""
    return ClipJob(studio.path(left), studio.path(right), studio.path(clip_relpath(left, right)), fps)


def ensure_clip(studio: Studio, left: str | None, right: str | None, fps: float) -> Path:
    """The clip of ``left`` beside ``right`` (frames files), rendered now if missing or unreadable."""
    path = studio.path(clip_relpath(left, right))
    if _is_gif(path):
        return path
    return render_clip(clip_job(studio, left, right, fps))


def _is_gif(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(6) in (b"GIF87a", b"GIF89a")
    except OSError:
        return False


class _InlinePool:
    """The ``map`` of a process pool, run in this process (one worker)."""

    def __enter__(self) -> _InlinePool:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map(self, fn: Callable, jobs: list, chunksize: int = 1) -> Iterator:
        return map(fn, jobs)


def worker_pool(workers: int) -> ProcessPoolExecutor | _InlinePool:
    """A process pool of ``workers``, or this process alone for 1."""
    return ProcessPoolExecutor(max_workers=workers) if workers > 1 else _InlinePool()


def render_clips(jobs: list[ClipJob], workers: int, on_progress: Callable[[str, int, int], None]) -> None:
    """Render clips, in parallel worker processes when ``workers > 1``. A pair's two orders
    come one after the other and the pairs of one item together, so decoded frames are
    reused from the cache."""

    def order(job: ClipJob) -> tuple[str, str, str]:
        left, right = str(job.left_frames), str(job.right_frames)
        return (min(left, right), max(left, right), left)

    ordered = sorted(jobs, key=order)
    try:
        with worker_pool(workers) as pool:
            for done, _ in enumerate(pool.map(render_clip, ordered, chunksize=8), 1):
                on_progress("clips", done, len(ordered))
    finally:
        _frames.clear()  # this process's share: the memory goes back once the clips are written
