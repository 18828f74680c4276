"""Projects' rows: a new project, its episodes and their items, the pairs to label."""

from __future__ import annotations

import pytest

from db import repo
from db.engine import session_scope
from db.errors import NotFoundError
from db.models import Item, ProjectKind, Query, Trajectory


def _new(file: str, starts: list[int]) -> repo.NewTrajectory:
    segments = tuple(
        repo.NewSegment(start=s, length=5, clip_file=f"{file}_{s}.npz", true_return=float(s)) for s in starts
    )
    return repo.NewTrajectory(
        file=f"{file}.npz",
        length=20,
        source_policy="random",
        seed=3,
        true_return=7.0,
        terminated=True,
        segments=segments,
    )


def test_episodes_and_their_items_are_added_in_order_and_pairs_once_each_as_lower_higher(store):
    with session_scope(store, write=True) as s:
        project = repo.create_project(
            s, name="p", kind=ProjectKind.trajectory, env_id="CartPole-v1", config={"fps": 10}, guidelines="g"
        )
        ids = repo.add_trajectories(s, project.id, [_new("a", [0, 10]), _new("b", [5])])
        (a0, a10), (b5,) = ids
        new = repo.add_queries(s, project.id, [(a10, a0), (a0, a10), (b5, a0)], "random", [2.0, 9.0, 1.0])
        again = repo.add_queries(s, project.id, [(a0, b5), (a10, b5)], "policy")
    assert len(new) == 2 and len(again) == 1  # (a0, a10) once; (a0, b5) was there already
    with session_scope(store) as s:
        items = {i.id: i for i in s.query(Item)}
        trajectories = {t.id: t for t in s.query(Trajectory)}
        queries = [(q.item_a_id, q.item_b_id, q.method, q.priority) for q in s.query(Query).order_by(Query.id)]
    assert [(items[i].start, items[i].clip_file) for i in (a0, a10, b5)] == [
        (0, "a_0.npz"),
        (10, "a_10.npz"),
        (5, "b_5.npz"),
    ]
    assert trajectories[items[a0].trajectory_id].file == "a.npz" and trajectories[items[b5].trajectory_id].terminated
    assert queries == [(a0, a10, "random", 2.0), (a0, b5, "random", 1.0), (a10, b5, "policy", 0.0)]


def test_project_settings_are_replaced_and_a_missing_project_is_named(store):
    with session_scope(store, write=True) as s:
        project = repo.create_project(s, name="t", kind=ProjectKind.text, env_id=None, config={"a": 1}, guidelines="")
        repo.set_project_config(s, project.id, {"autopilot_every": 50})
    with session_scope(store) as s:
        assert repo.get_project(s, "t").config == {"autopilot_every": 50}
    with pytest.raises(NotFoundError, match="no project with id 999"), session_scope(store, write=True) as s:
        repo.set_project_config(s, 999, {})
