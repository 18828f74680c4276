"""The demo-project use case: what it stores, and that a failure stores nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from app.config import Settings, Studio
from app.services import clips, demo, text_data
from db.engine import session_scope
from db.models import Item, Project, Query, Trajectory
from rlhf_core.envs.episodes import load_episode, load_npz
from rlhf_core.errors import InvalidInputError


@pytest.mark.slow  # renders a 40-clip demo
def test_demo_stores_trajectories_segments_and_pairs_consistently(tmp_path):
    studio = Studio(Settings.from_env(tmp_path))
    result = demo.create_demo_project(studio, "cp", "CartPole-v1", n_segments=10, n_queries=15, workers=1)
    assert result.created and (result.counts.items, result.counts.queries) == (10, 15)
    with session_scope(studio.engine) as session:
        project = session.scalars(select(Project)).one()
        assert project.config["segment_length"] == 75 and project.config["fps"] == 50
        assert "pole should stay upright" in project.guidelines
        trajs = {t.id: t for t in session.scalars(select(Trajectory))}
        items = list(session.scalars(select(Item)))
        queries = list(session.scalars(select(Query)))
    sources = {t.source_policy for t in trajs.values()}
    assert "random" in sources and any(s.startswith("scripted") for s in sources)
    for item in items:
        traj = load_episode(studio.path(trajs[item.trajectory_id].file))
        end = min(item.start + item.length, traj.length)
        assert item.true_return == pytest.approx(float(traj.rewards[item.start : end].sum()))
        frames = load_npz(studio.path(item.clip_file))
        assert frames["frames"].shape[0] == item.length == 75 and frames["valid"].dtype == bool
    returns = [i.true_return for i in items]
    assert max(returns) - min(returns) >= 20  # clips differ in quality
    assert all(q.item_a_id < q.item_b_id for q in queries)
    assert len({(q.item_a_id, q.item_b_id) for q in queries}) == 15


def test_same_seed_gives_the_same_project(tmp_path):
    one, two = (Studio(Settings.from_env(tmp_path / n)) for n in "ab")
    for studio in (one, two):
        demo.create_demo_project(studio, "p", n_segments=6, n_queries=5, workers=1, seed=3)
    with session_scope(one.engine) as s1, session_scope(two.engine) as s2:
        r1 = [(i.start, i.true_return, Path(i.clip_file).name) for i in s1.scalars(select(Item).order_by(Item.id))]
        r2 = [(i.start, i.true_return, Path(i.clip_file).name) for i in s2.scalars(select(Item).order_by(Item.id))]
    assert r1 == r2


def test_projects_whose_names_slug_alike_keep_separate_files(tmp_path):
    studio = Studio(Settings.from_env(tmp_path))
    demo.create_demo_project(studio, "my demo", n_segments=3, n_queries=2, workers=1)
    demo.create_demo_project(studio, "my-demo", n_segments=3, n_queries=2, workers=1)
    with session_scope(studio.engine) as session:
        items = list(session.scalars(select(Item)))
    assert len(items) == 6 and all(studio.path(i.clip_file).is_file() for i in items)
    assert len({Path(i.clip_file).parent.parent for i in items}) == 2


def test_a_failure_while_rendering_leaves_no_project_and_no_files(tmp_path, monkeypatch):
    studio = Studio(Settings.from_env(tmp_path))

    def broken(job):
        raise OSError("disk full")

    monkeypatch.setattr(clips, "render_clip", broken)
    with pytest.raises(OSError, match="disk full"):
        demo.create_demo_project(studio, "p", n_segments=4, n_queries=3, workers=1)
    with session_scope(studio.engine) as session:
        assert session.scalars(select(Project)).all() == []
    assert not list((tmp_path / "projects").glob("*"))  # the new folder was removed


def test_sampled_pairs_are_distinct_and_ordered():
    pairs = demo._sample_pairs(6, 15, np.random.default_rng(0))
    assert len(set(pairs)) == 15 and all(a < b for a, b in pairs)


def test_a_demo_under_the_name_of_a_project_of_another_kind_or_room_is_refused(tmp_path):
    studio = Studio(Settings.from_env(tmp_path))
    demo.create_demo_project(studio, "p", "CartPole-v1", n_segments=3, n_queries=2, workers=1)
    again = demo.create_demo_project(studio, "p", "CartPole-v1", n_segments=3, n_queries=2, workers=1)
    assert not again.created and again.counts.items == 3  # the same demo: nothing added, as before
    with pytest.raises(InvalidInputError, match="'p' already exists and holds clips of CartPole-v1, not clips of "):
        demo.create_demo_project(studio, "p", n_segments=3, n_queries=2, workers=1)
    text_data.create_team_demo(studio, "words", pairs=4)
    with pytest.raises(InvalidInputError, match="holds text pairs.*--project NEW"):
        demo.create_demo_project(studio, "words", "CartPole-v1", n_segments=3, n_queries=2, workers=1)


def test_clips_reuse_decoded_frames_within_a_budget_and_reread_a_rewritten_file(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):  # three items of 4 frames of 8x8 (768 bytes of frames each)
        paths.append(tmp_path / f"item{i}.npz")
        clips.save_item_frames(paths[-1], rng.integers(0, 255, (4, 8, 8, 3), dtype=np.uint8), np.ones(4, bool))
    reads: list[str] = []
    real = clips.load_npz
    monkeypatch.setattr(clips, "load_npz", lambda path: reads.append(Path(path).name) or real(path))
    jobs = [
        clips.ClipJob(paths[a], paths[b], tmp_path / f"clip{a}{b}.gif", fps=10.0)
        for a, b in [(2, 0), (0, 1), (1, 0), (0, 2), (1, 2)]
    ]
    clips.render_clips(jobs, workers=1, on_progress=lambda *a: None)
    assert reads == ["item0.npz", "item1.npz", "item2.npz"]  # each item decoded once
    assert all(job.out.read_bytes()[:6] == b"GIF89a" for job in jobs)
    assert clips._frames._bytes == 0  # the memory goes back after the batch
    reads.clear()
    monkeypatch.setattr(clips, "FRAMES_CACHE_BYTES", 2 * (768 + 4))  # room for two items: least recent goes
    clips.render_clips(jobs, workers=1, on_progress=lambda *a: None)
    # both orders of a pair together, pairs by their first item: (0,1) (1,0) (0,2) (2,0) (1,2)
    assert reads == ["item0.npz", "item1.npz", "item2.npz", "item1.npz", "item2.npz"]
    reads.clear()
    first = clips.render_clip(jobs[1]).read_bytes()  # item 0 beside item 1
    clips.save_item_frames(paths[1], np.zeros((4, 8, 8, 3), np.uint8), np.ones(4, bool))  # rewritten
    assert clips.render_clip(jobs[1]).read_bytes() != first and reads == ["item0.npz", "item1.npz", "item1.npz"]


def test_a_demo_without_clips_ahead_renders_a_pairs_clip_when_first_shown(tmp_path):
    studio = Studio(Settings.from_env(tmp_path))
    demo.create_demo_project(studio, "p", n_segments=4, n_queries=3, workers=1, render_clips=False)
    assert not list(tmp_path.glob("projects/*/clips/*.gif"))
    with session_scope(studio.engine) as session:
        query = session.scalars(select(Query)).first()
        left, right = session.get(Item, query.item_a_id).clip_file, session.get(Item, query.item_b_id).clip_file
    shown = clips.ensure_clip(studio, left, right, fps=10.0)
    assert shown.read_bytes()[:6] == b"GIF89a" and [p.name for p in tmp_path.glob("projects/*/clips/*.gif")] == [
        shown.name
    ]
