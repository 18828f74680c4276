"""Episodes become items to compare: one place for episode -> stored trajectory -> segment items,
and for the clips of new pairs in both side orders.

The demo (:mod:`app.services.demo`) and the policy's rollouts (:mod:`app.services.policies`)
both record episodes this way; every new pair of items, whatever chose it (demo, rollouts,
query selection), gets its clips rendered in both orders before its query row exists.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from app.config import Studio
from app.services.clips import ClipJob, clip_job, render_clips, save_item_frames
from db.repo import NewSegment, NewTrajectory
from rlhf_core.envs.episodes import Episode, save_episode, segment_frames


def store_episode(
    episode: Episode, folder: Path, data_dir: Path, stem: str, starts: list[int], length: int
) -> NewTrajectory:
    """Write ``episode`` to ``folder/trajectories/STEM.npz`` and each segment's frames (from
    ``starts``, ``length`` steps) to ``folder/items/STEM_START.npz``; the rows to add for them.

    Item frame files are named after ``stem``: give each a name unique in the data folder, as
    clip files are named after frame files.
    """
    path = folder / "trajectories" / f"{stem}.npz"
    save_episode(path, episode)
    assert episode.frames is not None, "record the episode with render=True"
    segments = []
    for start in starts:
        frames, valid = segment_frames(episode.frames, episode.length, start, length)
        frames_path = folder / "items" / f"{stem}_{start:04d}.npz"
        save_item_frames(frames_path, frames, valid)
        end = min(start + length, episode.length)
        segments.append(
            NewSegment(
                start=int(start),
                length=length,
                clip_file=frames_path.relative_to(data_dir).as_posix(),
                true_return=float(episode.rewards[start:end].sum()),
            )
        )
    return NewTrajectory(
        file=path.relative_to(data_dir).as_posix(),
        length=episode.length,
        source_policy=episode.source,
        seed=episode.seed,
        true_return=episode.true_return,
        terminated=episode.terminated,
        segments=tuple(segments),
    )


def both_orders(studio: Studio, pairs: list[tuple[str, str]], fps: float) -> list[ClipJob]:
    """Clip jobs for pairs of items (given by their frames files): each pair in both side orders,
    so a pair is ready to show whichever side it is served on."""
    return [job for a, b in pairs for job in (clip_job(studio, a, b, fps), clip_job(studio, b, a, fps))]


def render_pair_clips(
    studio: Studio,
    pairs: list[tuple[str, str]],
    fps: float,
    workers: int,
    on_progress: Callable[[str, int, int], None],
) -> None:
    """Render the clips of pairs in both orders (see :func:`both_orders`)."""
    render_clips(both_orders(studio, pairs, fps), workers, on_progress)
