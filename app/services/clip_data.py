"""Every segment of a clip project with what it is judged by: the data the clip reward models,
the scripted teachers and personas, the personal model and the agreement report read.

Loaded once per process and project (the few most recently used are kept), from the
project's episode files.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from app.config import Studio
from app.services.model_registry import TrainingError
from db import repo
from db.engine import session_scope
from db.models import Project
from rlhf_core.envs.episodes import Episode, load_episode, padded_actions, segment_indices
from rlhf_core.rewards.preferences import Segments
from rlhf_core.rewards.teachers import RewardFn, teacher_reward_fn, true_reward


@dataclass(frozen=True)
class ProjectData:
    """Every segment of a trajectory project, in item-id order, with what teachers judge by."""

    item_ids: np.ndarray
    """(M,) item ids."""
    segments: Segments
    teacher_rewards: np.ndarray
    """(M, L) per-step reward a scripted teacher judges by (true or registered oracle)."""
    true_rewards: np.ndarray
    """(M, L) per-step true reward of the environment."""

    def rows(self, item_ids: list[int] | np.ndarray) -> np.ndarray:
        """Row of each item id."""
        lookup = {int(i): r for r, i in enumerate(self.item_ids)}
        return np.array([lookup[int(i)] for i in item_ids], dtype=np.int64)

    @property
    def teacher_returns(self) -> np.ndarray:
        return self.teacher_rewards.sum(axis=1)


def _segment_arrays(traj: Episode, start: int, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observations (L + 1: before each step, then after the last), validity (L) and actions
    (L, or L x D continuous; 0 on padding) of a window."""
    idx, valid = segment_indices(traj.length, start, length + 1)
    steps = np.minimum(idx[:length], traj.length - 1)
    return traj.obs[idx], valid[:length], padded_actions(traj.actions, steps, valid[:length])


_data_lock = threading.Lock()


@lru_cache(maxsize=8)
def _project_data_cached(data_dir: str, url: str, project_id: int, n_items: int, env_id: str) -> ProjectData:
    studio = Studio.for_paths(data_dir, url)
    with session_scope(studio.engine) as session:
        rows = repo.project_items(session, project_id)
    if not rows:
        raise TrainingError(
            "this project has no trajectory segments (a text project?): scripted teachers and these reward "
            "models work on clip projects; label text projects in the app or import labeled pairs"
        )
    reward_fn = teacher_reward_fn(env_id)
    cache: dict[str, Episode] = {}
    obs, valid, actions, teach, true = [], [], [], [], []
    for item, traj_row in rows:
        traj = cache.get(traj_row.file)
        if traj is None:
            traj = cache[traj_row.file] = load_episode(studio.path(traj_row.file))
        assert item.start is not None and item.length is not None
        o, v, a = _segment_arrays(traj, item.start, item.length)
        obs.append(o)
        valid.append(v)
        actions.append(a)
        teach.append(reward_fn(traj, item.start, item.length))
        true.append(true_reward(traj, item.start, item.length))
    return ProjectData(
        item_ids=np.array([item.id for item, _ in rows], dtype=np.int64),
        segments=Segments(np.stack(obs), np.stack(valid), _stack_actions(actions)),
        teacher_rewards=np.stack(teach).astype(np.float32),
        true_rewards=np.stack(true).astype(np.float32),
    )


def _stack_actions(actions: list[np.ndarray]) -> np.ndarray:
    stacked = np.stack(actions)
    return stacked.astype(np.int64) if stacked.ndim == 2 else stacked.astype(np.float32)


def project_data(studio: Studio, project: Project) -> ProjectData:
    """Segments of a project (loaded once per process while its items do not change)."""
    with session_scope(studio.engine) as session:
        n_items = repo.project_counts(session, project.id).items
    with _data_lock:
        return _project_data_cached(
            str(studio.settings.data_dir), studio.settings.database_url, project.id, n_items, project.env_id or ""
        )


def segment_rewards(studio: Studio, project: Project, item_ids: list[int], reward_fn: RewardFn) -> np.ndarray:
    """Per-step rewards (N, L) of items under ``reward_fn`` (a persona's, say), from their episodes."""
    with session_scope(studio.engine) as session:
        rows = {item.id: (item, traj) for item, traj in repo.project_items(session, project.id)}
    cache: dict[str, Episode] = {}
    out = []
    for item_id in item_ids:
        item, traj_row = rows[item_id]
        traj = cache.get(traj_row.file)
        if traj is None:
            traj = cache[traj_row.file] = load_episode(studio.path(traj_row.file))
        assert item.start is not None and item.length is not None
        out.append(reward_fn(traj, item.start, item.length))
    return np.stack(out).astype(np.float32)
