"""Use case: create a demo project with clips ready to label.

Collects rollouts from a mix of behaviours (random, and a scripted one at several noise
levels), cuts fixed-length segments (about 1.5 s of play), stores trajectories and frames
as files, samples random pairs as queries and renders their clips in both side orders. The
rows are written in one transaction at the end, so an interrupted run leaves no project
behind, and a second run for an existing project adds nothing.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.config import Studio
from app.services.clips import worker_pool
from app.services.episodes import render_pair_clips, store_episode
from db import names, repo
from db.engine import session_scope
from db.models import Project, ProjectKind
from db.repo import NewTrajectory
from rlhf_core.envs.behaviours import behaviour_mix
from rlhf_core.envs.episodes import choose_segment_starts, rollout
from rlhf_core.envs.registry import DEFAULT_ENV_ID, env_info
from rlhf_core.errors import InvalidInputError

#: Progress callback: (stage, done, total).
Progress = Callable[[str, int, int], None]

DEFAULT_GUIDELINES = """\
### What to compare
Two clips of the same task play side by side, in sync, and loop. Pick the one whose
behaviour is **closer to what the task wants**, judged over the whole clip.

* **{task}**
* A clip that turns grey with *episode over* has ended: judge what happened before.
* **Equal**: both are about as good (or as bad). **Can't tell**: you cannot judge them
  (too short, unclear); it is stored but never used for training.

Keys: **1** left better · **2** right better · **3** equal · **4** can't tell · **U** undo.
"""

TASKS = {
    "minigrid": "MiniGrid: the red triangle should reach the green square, by a short path.",
    "cartpole": "CartPole: the pole should stay upright and the cart near the middle.",
    "pendulum": "Pendulum: the pendulum should swing up and stay upright, with little effort.",
    "mujoco": "MuJoCo: the robot should move forward (to the right) quickly without falling.",
    "generic": "Prefer the clip that makes more progress on the task.",
}


@dataclass(frozen=True)
class DemoResult:
    """The demo project and whether this call created it."""

    project: str
    created: bool
    counts: repo.ProjectCounts


def _slug(name: str) -> str:
    """A short file-system-safe stem of a project name (the folder also gets a random suffix)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name)[:40].strip("-.") or "project"


def _noop(stage: str, done: int, total: int) -> None:
    return None


def create_demo_project(
    studio: Studio,
    name: str = "demo",
    env_id: str = DEFAULT_ENV_ID,
    *,
    n_segments: int = 200,
    n_queries: int = 300,
    seed: int = 0,
    workers: int = 2,
    on_progress: Progress = _noop,
    render_clips: bool = True,
) -> DemoResult:
    """Create project ``name`` on ``env_id`` (no-op when it exists). With ``render_clips``
    False, a pair's clip is rendered when it is first shown instead of now."""
    name = names.project_name(name)
    if n_segments < 2:
        raise InvalidInputError(f"a project needs at least 2 segments to compare, got {n_segments}")
    max_pairs = n_segments * (n_segments - 1) // 2
    if not 1 <= n_queries <= max_pairs:
        raise InvalidInputError(f"{n_queries} queries asked, but {n_segments} segments make 1 to {max_pairs} pairs")
    with session_scope(studio.engine) as session:
        existing = repo.find_project(session, name)
        if existing is not None:
            _check_same_demo(existing, env_id)
            return DemoResult(name, False, repo.project_counts(session, existing.id))

    info = env_info(env_id)
    length = info.segment_length(1.5)
    rng = np.random.default_rng(seed)
    # A folder of its own: names that slug alike ("my demo", "my-demo") never share files.
    folder = studio.settings.data_dir / "projects" / f"{_slug(name)}-{uuid.uuid4().hex[:8]}"
    try:
        trajectories = _collect(studio, folder, env_id, length, n_segments, seed, workers, on_progress)
        frames = [seg.clip_file for t in trajectories for seg in t.segments]
        pairs = _sample_pairs(len(frames), n_queries, rng)
        if render_clips:
            render_pair_clips(
                studio, [(frames[a], frames[b]) for a, b in pairs], info.render_fps, workers, on_progress
            )
        with session_scope(studio.engine, write=True) as session:
            if repo.find_project(session, name) is not None:  # created concurrently: this one's files go
                shutil.rmtree(folder, ignore_errors=True)
                return DemoResult(name, False, repo.project_counts(session, repo.get_project(session, name).id))
            project = repo.create_project(
                session,
                name=name,
                kind=ProjectKind.trajectory,
                env_id=env_id,
                config={"segment_length": length, "fps": info.render_fps, "seed": seed, "pixels": info.pixels},
                guidelines=DEFAULT_GUIDELINES.format(task=TASKS.get(info.family, TASKS["generic"])),
            )
            item_ids = [i for ids in repo.add_trajectories(session, project.id, trajectories) for i in ids]
            repo.add_queries(session, project.id, [(item_ids[a], item_ids[b]) for a, b in pairs], "random")
            counts = repo.project_counts(session, project.id)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return DemoResult(name, True, counts)


def _check_same_demo(project: Project, env_id: str) -> None:
    """A demo asked for under an existing project's name adds nothing; where that project is
    not a clip project of the same environment, saying "already exists" would hide that the
    demo asked for does not exist: refuse, naming what is there."""
    if project.kind is ProjectKind.trajectory and project.env_id == env_id:
        return
    there = "text pairs" if project.kind is ProjectKind.text else f"clips of {project.env_id}"
    raise InvalidInputError(
        f"project {project.name!r} already exists and holds {there}, not clips of {env_id}; "
        f"give the demo another name (--project NEW)"
    )


@dataclass(frozen=True)
class _EpisodeJob:
    folder: Path
    data_dir: Path
    env_id: str
    index: int
    seed: int
    length: int
    want: int


def _episode(job: _EpisodeJob) -> NewTrajectory:
    """Play one episode, write its trajectory and segment frame files, return the rows to add.

    Runs in a worker process; randomness comes from (seed, episode index) alone, so the
    project is the same whatever the number of workers.
    """
    rng = np.random.default_rng([job.seed, job.index])
    behaviours = behaviour_mix(job.env_id)
    behaviour = behaviours[job.index % len(behaviours)]
    # Episodes are cut at 3 clip lengths: longer ones add render time, not variety.
    episode = rollout(job.env_id, behaviour, seed=job.seed + job.index, rng=rng, max_steps=3 * job.length)
    starts = choose_segment_starts(episode.length, job.length, job.want, rng, terminated=episode.terminated)
    return store_episode(episode, job.folder, job.data_dir, f"{job.index:05d}", starts, job.length)


def _collect(
    studio: Studio,
    folder: Path,
    env_id: str,
    length: int,
    n_segments: int,
    seed: int,
    workers: int,
    on_progress: Progress,
) -> list[NewTrajectory]:
    """Roll out episodes (in parallel) until ``n_segments`` segments are cut; the last episode
    keeps only the segments still needed."""
    trajectories: list[NewTrajectory] = []
    count = 0
    index = 0
    with worker_pool(workers) as pool:
        while count < n_segments:
            jobs = [
                _EpisodeJob(folder, studio.settings.data_dir, env_id, index + k, seed, length, 2)
                for k in range(max(1, 2 * workers))
            ]
            index += len(jobs)
            for new in pool.map(_episode, jobs):
                if count >= n_segments:
                    break
                kept = new.segments[: n_segments - count]
                trajectories.append(dataclasses.replace(new, segments=kept))
                count += len(kept)
                on_progress("rollouts", count, n_segments)
    return trajectories


def _sample_pairs(n_items: int, n_pairs: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """``n_pairs`` distinct unordered pairs of item indices, each as (lower, higher)."""
    chosen: set[tuple[int, int]] = set()
    while len(chosen) < n_pairs:
        a, b = (int(v) for v in rng.choice(n_items, size=2, replace=False))
        chosen.add((min(a, b), max(a, b)))
    return sorted(chosen, key=lambda p: rng.random())
