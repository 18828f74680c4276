"""Serving queries, recording labels, undo and progress."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import func, select, update

from db import repo
from db.engine import session_scope
from db.errors import NotFoundError
from db.models import Choice, Claim, Label, Project, Query
from tests.db.conftest import seed_project


def _annotator(engine, name: str) -> int:
    with session_scope(engine, write=True) as session:
        return repo.get_or_create_annotator(session, name).id


def _claim(engine, project_id, annotator_id, seed=0, **kw):
    with session_scope(engine, write=True) as session:
        return repo.claim_next_query(session, project_id, annotator_id, rng=np.random.default_rng(seed), **kw)


def _label(engine, served, annotator_id, choice=Choice.left):
    with session_scope(engine, write=True) as session:
        return repo.record_label(session, served.query_id, annotator_id, choice, swapped=served.swapped)


@pytest.mark.parametrize(
    ("choice", "swapped", "pref"),
    [
        (Choice.left, False, 1.0),
        (Choice.left, True, 0.0),
        (Choice.right, False, 0.0),
        (Choice.right, True, 1.0),
        (Choice.equal, False, 0.5),
        (Choice.equal, True, 0.5),
        (Choice.cant_tell, False, None),
        (Choice.skip, True, None),
    ],
)
def test_pref_is_the_probability_that_item_a_is_preferred(choice, swapped, pref):
    assert repo.pref_for(choice, swapped) == pref


def test_highest_priority_query_is_served_first(store):
    pid = seed_project(store, n_queries=5)
    with session_scope(store, write=True) as session:
        target = session.scalars(select(Query).order_by(Query.id.desc())).first()
        target.priority = 3.0
        target_id = target.id
    served = _claim(store, pid, _annotator(store, "a"))
    assert served.query_id == target_id


def test_two_annotators_never_get_the_same_query_at_once(store):
    pid = seed_project(store, n_queries=3)
    a, b, c, d = (_annotator(store, n) for n in "abcd")
    got = [_claim(store, pid, x) for x in (a, b, c)]
    assert len({s.query_id for s in got}) == 3
    assert _claim(store, pid, d) is None  # all three are held


def test_a_reload_serves_the_same_claimed_query(store):
    pid = seed_project(store, n_queries=3)
    a = _annotator(store, "a")
    first, again = _claim(store, pid, a, seed=1), _claim(store, pid, a, seed=2)
    assert (first.query_id, first.swapped) == (again.query_id, again.swapped)


def test_several_labels_per_query_serve_the_same_query_to_several_annotators(store):
    pid = seed_project(store, n_queries=1, labels_per_query=2)
    a, b, c = (_annotator(store, n) for n in "abc")
    sa, sb = _claim(store, pid, a), _claim(store, pid, b)
    assert sa.query_id == sb.query_id
    assert _claim(store, pid, c) is None  # two labels asked, two annotators hold it
    _label(store, sa, a)
    assert _claim(store, pid, a) is None  # a answered it already


def test_expired_claims_are_released(store):
    pid = seed_project(store, n_queries=1)
    a, b = _annotator(store, "a"), _annotator(store, "b")
    held = _claim(store, pid, a)
    with session_scope(store, write=True) as session:
        session.execute(update(Claim).values(expires_at=Claim.expires_at - timedelta(hours=1)))
    assert _claim(store, pid, b).query_id == held.query_id


def test_double_submit_gives_one_label(store):
    pid = seed_project(store, n_queries=2)
    a = _annotator(store, "a")
    served = _claim(store, pid, a)
    first, second = _label(store, served, a, Choice.left), _label(store, served, a, Choice.right)
    assert first.created and not second.created
    assert second.label_id == first.label_id and second.pref == first.pref
    with session_scope(store) as session:
        assert session.scalar(select(func.count(Label.id))) == 1
        assert session.scalar(select(func.count()).select_from(Claim)) == 0  # claim released


def test_label_on_a_missing_query_is_refused_and_stores_nothing(store):
    seed_project(store, n_queries=1)
    a = _annotator(store, "a")
    with pytest.raises(NotFoundError, match="no query with id 999"), session_scope(store, write=True) as s:
        repo.record_label(s, 999, a, Choice.left, swapped=False)
    with session_scope(store) as session:
        assert session.scalar(select(func.count(Label.id))) == 0


def test_undo_removes_the_last_label_and_serves_its_pair_again(store):
    pid = seed_project(store, n_queries=4)
    a = _annotator(store, "a")
    first = _claim(store, pid, a)
    _label(store, first, a)
    second = _claim(store, pid, a)
    _label(store, second, a, Choice.equal)
    _claim(store, pid, a)  # a third pair is on screen when undo is pressed
    with session_scope(store, write=True) as session:
        assert repo.undo_last_label(session, pid, a).query_id == second.query_id
    again = _claim(store, pid, a)
    assert (again.query_id, again.swapped) == (second.query_id, second.swapped)
    with session_scope(store) as session:
        assert session.scalars(select(Label.query_id)).all() == [first.query_id]


def test_undo_with_no_labels_does_nothing(store):
    pid = seed_project(store, n_queries=1)
    with session_scope(store, write=True) as session:
        assert repo.undo_last_label(session, pid, _annotator(store, "a")) is None


def test_progress_counts_answers_not_skips(store):
    pid = seed_project(store, n_queries=5)
    a = _annotator(store, "a")
    for choice in (Choice.left, Choice.skip, Choice.cant_tell):
        _label(store, _claim(store, pid, a), a, choice)
    with session_scope(store) as session:
        progress = repo.annotator_progress(session, pid, a)
        counts = repo.project_counts(session, pid)
    assert (progress.total_queries, progress.labeled_queries, progress.my_labels) == (5, 2, 2)
    assert progress.labels_per_minute > 0
    assert (counts.items, counts.queries, counts.labels) == (10, 5, 2)


def test_unknown_project_names_the_known_ones(store):
    seed_project(store, name="alpha")
    with pytest.raises(NotFoundError, match="no project named 'beta' \\(projects: alpha\\)"):
        with session_scope(store) as session:
            repo.get_project(session, "beta")


def test_annotator_names_are_validated(store):
    with session_scope(store, write=True) as session:
        with pytest.raises(ValueError, match="cannot be empty"):
            repo.get_or_create_annotator(session, "   ")
        assert repo.get_or_create_annotator(session, " bob ").name == "bob"
        assert repo.get_or_create_annotator(session, "bob").id == repo.get_or_create_annotator(session, "bob").id


def test_with_two_labels_per_pair_half_answered_pairs_are_finished_before_new_ones_start(store):
    pid = seed_project(store, n_queries=6, labels_per_query=2)
    a, b, c = (_annotator(store, n) for n in "abc")
    first = _claim(store, pid, a)
    _label(store, first, a)
    second = _claim(store, pid, a)
    _label(store, second, a)
    # b gets a's two pairs first (each needs one more answer), then new ones; never one twice
    got_b = []
    for _ in range(3):
        served = _claim(store, pid, b)
        got_b.append(served.query_id)
        _label(store, served, b)
    assert got_b[:2] == [first.query_id, second.query_id] and got_b[2] not in got_b[:2]
    # c is served neither of the finished pairs
    assert _claim(store, pid, c).query_id == got_b[2]
    with session_scope(store) as session:
        answered = dict(session.execute(select(Query.id, Query.answered)).all())
    assert answered[first.query_id] == 2 and answered[got_b[2]] == 1


def test_an_annotator_far_ahead_passes_over_a_window_of_their_own_pairs_not_all_of_them(store, monkeypatch):
    # a far ahead of b: a's own half-finished pairs fill the window (3 here, 1,000 in the studio),
    # so a is given a fresh pair instead of the one b started, which sits past them
    monkeypatch.setattr("db.repo.labeling.HALF_FINISHED_WINDOW", 3)
    pid = seed_project(store, n_queries=8, labels_per_query=2)
    a, b = _annotator(store, "a"), _annotator(store, "b")
    mine = []
    for _ in range(4):
        served = _claim(store, pid, a)
        mine.append(served.query_id)
        _label(store, served, a)
    with session_scope(store, write=True) as session:  # the pair b starts comes after a's four in serving order
        session.execute(update(Query).where(Query.id.in_(mine)).values(priority=1.0))
        first_fresh = session.scalar(
            select(Query.id).where(Query.project_id == pid, Query.answered == 0).order_by(Query.id).limit(1)
        )
    started = _claim(store, pid, b, exclude=tuple(mine))
    assert started.query_id == first_fresh
    _label(store, started, b)
    fresh = _claim(store, pid, a)
    assert fresh.query_id not in (*mine, started.query_id)
    with session_scope(store) as session:
        assert session.get(Query, fresh.query_id).answered == 0  # a fresh pair: b will finish a's
    # once no fresh pair is left, a is still served b's pair, past the window: nothing is lost
    with session_scope(store, write=True) as session:
        session.execute(update(Query).where(Query.answered == 0).values(answered=2))  # as if finished
    assert _claim(store, pid, a, exclude=(fresh.query_id,)).query_id == started.query_id
    assert _claim(store, pid, b, exclude=(started.query_id,)).query_id == mine[0]  # b: a's, in order


def test_a_pair_an_admin_ruled_on_is_served_no_more(store):
    # three answers per pair; after two disagree, a ruling settles the pair: the third
    # annotator's effort goes to a pair training still needs, not to one it will ignore
    pid = seed_project(store, n_queries=4, labels_per_query=3)
    a, b, c = (_annotator(store, n) for n in "abc")
    first = _claim(store, pid, a)
    _label(store, first, a, Choice.left)
    again = _claim(store, pid, b)
    assert again.query_id == first.query_id  # half-finished pairs first
    _label(store, again, b, Choice.right if again.swapped == first.swapped else Choice.left)
    assert _claim(store, pid, c, seed=1).query_id == first.query_id  # before the ruling: c gets it
    with session_scope(store, write=True) as session:
        session.execute(update(Claim).values(expires_at=Claim.expires_at - timedelta(days=1)))
        repo.adjudicate(session, pid, first.query_id, 1.0, None)
    served = _claim(store, pid, c, seed=2)
    assert served is not None and served.query_id != first.query_id
    with session_scope(store, write=True) as session:
        repo.adjudicate(session, pid, first.query_id, None, None)  # ruling withdrawn: open again
        session.execute(update(Claim).values(expires_at=Claim.expires_at - timedelta(days=1)))
    assert _claim(store, pid, c, seed=3).query_id == first.query_id


def test_gold_pairs_are_mixed_in_at_the_gold_rate_and_each_annotator_answers_each_once(store):
    pid = seed_project(store, n_items=12, n_queries=40)
    with session_scope(store, write=True) as session:
        ids = sorted(session.scalars(select(Query.id)))
        repo.set_gold(session, pid, {ids[0]: 1.0, ids[1]: 0.0})
        project = session.get(Project, pid)
        project.config = {"gold_rate": 0.5}
    a = _annotator(store, "a")
    served = []
    for seed in range(12):
        s = _claim(store, pid, a, seed=seed)
        served.append(s.query_id)
        _label(store, s, a)
    gold = [q for q in served if q in ids[:2]]
    assert sorted(gold) == ids[:2]  # both gold pairs, once each, then ordinary pairs only
    assert len(set(served)) == len(served)
    # gold pairs are not counted against labels_per_query: another annotator gets them too
    b = _annotator(store, "b")
    seen_b = set()
    for seed in range(12):
        s = _claim(store, pid, b, seed=100 + seed)
        seen_b.add(s.query_id)
        _label(store, s, b)
    assert set(ids[:2]) <= seen_b


def test_progress_counters_match_the_rows_after_labels_skips_and_undos(store):
    pid = seed_project(store, n_queries=12, labels_per_query=2)
    people = [_annotator(store, n) for n in ("a", "b", "c")]
    rng = np.random.default_rng(3)
    for step in range(30):
        who = people[step % 3]
        if rng.random() < 0.2:
            with session_scope(store, write=True) as session:
                repo.undo_last_label(session, pid, who)
            continue
        served = _claim(store, pid, who, seed=step)
        if served is not None:
            _label(store, served, who, Choice.skip if rng.random() < 0.2 else Choice.left)
    with session_scope(store) as session:
        counts = repo.project_counts(session, pid)
        answers = (
            select(Label)
            .join(Query, Query.id == Label.query_id)
            .where(Query.project_id == pid, Label.choice.in_(repo.ANSWERED))
        )
        rows = session.scalars(answers).all()
        assert counts.labels == len(rows) > 0
        assert counts.labeled_queries == len({r.query_id for r in rows})
        for who in people:
            mine = sum(r.annotator_id == who for r in rows)
            assert repo.annotator_progress(session, pid, who).my_labels == mine
        per_query = dict(session.execute(select(Query.id, Query.answered)).all())
        for query_id, answered in per_query.items():
            assert answered == sum(r.query_id == query_id for r in rows)
