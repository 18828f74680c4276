"""Labeling: serving queries with a side order, recording labels and undoing them, the comparisons
they make, and the priorities pending queries are served in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from db.errors import NotFoundError
from db.models import (
    Annotator,
    AnnotatorCount,
    Choice,
    Claim,
    Item,
    Label,
    Project,
    Query,
    as_utc,
    utcnow,
)
from db.repo.choices import ANSWERED, pref_for

#: How long a served query stays reserved for its annotator (rl-teacher used 2 minutes).
DEFAULT_CLAIM_TTL = timedelta(minutes=10)


@dataclass(frozen=True)
class ServedQuery:
    """A query reserved for one annotator, with the side order to show it in."""

    query_id: int
    item_a_id: int
    item_b_id: int
    swapped: bool
    """Item B is shown on the left."""
    claimed_at: datetime

    @property
    def left_item_id(self) -> int:
        return self.item_b_id if self.swapped else self.item_a_id

    @property
    def right_item_id(self) -> int:
        return self.item_a_id if self.swapped else self.item_b_id


def _not_mine(annotator_id: int):
    mine = aliased(Label)
    answer = select(mine.id).where(mine.query_id == Query.id, mine.annotator_id == annotator_id)
    return ~answer.correlate(Query).exists()


#: How many half-finished pairs (some answers, fewer than the project wants), in serving order,
#: are looked through for one that an annotator has not answered before they are given a fresh
#: pair instead. An annotator far ahead of the others has thousands of their own pairs waiting
#: for the others' answers; without this bound each of their next pairs passed over every one
#: of them (127 ms a label at 25,000 of them on SQLite).
HALF_FINISHED_WINDOW = 1000


def _open_for(
    project: Project, annotator_id: int, exclude: tuple[int, ...], *, others_only: bool, band: str | None = None
):
    """Pairs that still need answers, that this annotator has not labeled, counting claims on
    them (``others_only``: the claims of other annotators): half-finished pairs first, then by
    priority. Gold pairs are served apart (:func:`_gold_for`); a pair an admin has ruled on is
    settled (training uses the ruling) and served no more.

    ``band`` 'half': only the first :data:`HALF_FINISHED_WINDOW` half-finished pairs in that
    order (whoever answered them); 'fresh': only pairs nobody has answered; None: all."""
    claims = select(func.count()).select_from(Claim).where(Claim.query_id == Query.id)
    if others_only:
        claims = claims.where(Claim.annotator_id != annotator_id, Claim.expires_at >= utcnow())
    held = claims.correlate(Query).scalar_subquery()
    k = project.labels_per_query
    order = (Query.answered.desc(), Query.priority.desc(), Query.id)
    settled = (Query.gold_pref.is_(None), Query.adjudicated_pref.is_(None))
    stmt = select(Query).where(
        Query.project_id == project.id, *settled, _not_mine(annotator_id), Query.answered + held < k
    )
    if band == "half":  # the window's rows, read from the serving index, are all the outer query looks at
        window = select(Query.id, Query.answered, Query.priority).where(
            Query.project_id == project.id, Query.answered >= 1, Query.answered < k, *settled
        )
        if exclude:
            window = window.where(Query.id.not_in(exclude))
        w = window.order_by(*order).limit(HALF_FINISHED_WINDOW).subquery()
        stmt = stmt.join(w, w.c.id == Query.id)
        order = (w.c.answered.desc(), w.c.priority.desc(), w.c.id)
    elif band == "fresh":
        stmt = stmt.where(Query.answered == 0)
    else:
        stmt = stmt.where(Query.answered < k)
    if exclude:
        stmt = stmt.where(Query.id.not_in(exclude))
    return stmt.order_by(*order)


def _lock_open_query(session: Session, project: Project, annotator_id: int, exclude: tuple[int, ...]) -> Query | None:
    """The next open pair for an annotator, locked for this transaction where the database can.

    SQLite: the write transaction holds the database's write lock, so nothing changes
    between the choice and the claim. PostgreSQL: ``FOR UPDATE SKIP LOCKED`` passes over
    pairs that another transaction is claiming; but a pair whose claim was committed after
    this statement's snapshot was taken looks free and is no longer locked, so once locked
    it is checked again by a fresh statement (READ COMMITTED sees the committed claim) and
    passed over when it has been taken.
    """
    # half-finished pairs first, within a window (HALF_FINISHED_WINDOW), then fresh ones; the
    # rest only when neither has one (all the slow scan is then left for: one of the pairs it
    # passes over is this annotator's last)
    sqlite = session.get_bind().dialect.name == "sqlite"
    for band in ("half", "fresh", None):
        if sqlite:
            query = session.scalar(_open_for(project, annotator_id, exclude, others_only=False, band=band).limit(1))
        else:
            query = _lock_postgres(session, project, annotator_id, exclude, band)
        if query is not None:
            return query
    return None


def _lock_postgres(
    session: Session, project: Project, annotator_id: int, exclude: tuple[int, ...], band: str | None
) -> Query | None:
    passed: list[int] = []
    while True:
        stmt = _open_for(project, annotator_id, (*exclude, *passed), others_only=False, band=band).limit(1)
        # of=Query: the pair itself, not the window's rows it was found among (those stay free)
        query = session.scalar(stmt.with_for_update(skip_locked=True, of=Query))
        if query is None:
            return None
        recheck = _open_for(project, annotator_id, exclude, others_only=False).where(Query.id == query.id)
        if session.scalar(recheck.with_only_columns(Query.id).execution_options(populate_existing=True)) is not None:
            session.refresh(query)
            return query
        passed.append(query.id)


def _gold_for(annotator_id: int, project_id: int, exclude: tuple[int, ...]):
    """A gold pair this annotator has not answered (every annotator gets each gold pair once)."""
    stmt = select(Query).where(Query.project_id == project_id, Query.gold_pref.is_not(None), _not_mine(annotator_id))
    if exclude:
        stmt = stmt.where(Query.id.not_in(exclude))
    return stmt.order_by(func.random()).limit(1)


def _served(query: Query, claim: Claim) -> ServedQuery:
    return ServedQuery(query.id, query.item_a_id, query.item_b_id, claim.swapped, claim.claimed_at)


def claim_next_query(
    session: Session,
    project_id: int,
    annotator_id: int,
    *,
    rng: np.random.Generator,
    ttl: timedelta = DEFAULT_CLAIM_TTL,
    exclude: tuple[int, ...] = (),
) -> ServedQuery | None:
    """Reserve the next query for an annotator, or None when nothing is left for them.

    An annotator who already holds a live claim gets that query again (a page reload shows
    the same pair). Otherwise, at the project's ``gold_rate`` (config), a gold pair this
    annotator has not answered; else the pair that this annotator has not answered and that
    still needs labels (``labels_per_query`` distinct annotators, counting live claims of
    others), half-finished pairs first (those among the first :data:`HALF_FINISHED_WINDOW` of
    them in serving order: an annotator whose own answers fill those gets a fresh pair, and
    the others finish theirs), then by priority. With one label per query two
    annotators are therefore never served the same query at once.
    Call inside a write transaction (``session_scope(write=True)``).
    """
    now = utcnow()
    session.execute(delete(Claim).where(Claim.expires_at < now))
    project = session.get(Project, project_id)
    if project is None:
        raise NotFoundError(f"no project with id {project_id}")

    mine = session.execute(
        select(Query, Claim)
        .join(Claim, Claim.query_id == Query.id)
        .where(Query.project_id == project_id, Claim.annotator_id == annotator_id, Query.id.not_in(exclude))
        .order_by(Claim.claimed_at)
        .limit(1)
    ).first()
    if mine is not None:
        return _served(mine[0], mine[1])

    gold_rate = float((project.config or {}).get("gold_rate", 0.0))
    query = None
    if gold_rate > 0 and rng.random() < gold_rate:
        query = session.scalar(_gold_for(annotator_id, project_id, exclude))
    if query is None:
        query = _lock_open_query(session, project, annotator_id, exclude)
    if query is None and gold_rate > 0:  # no ordinary pair left: the gold ones this person has not seen
        query = session.scalar(_gold_for(annotator_id, project_id, exclude))
    if query is None:
        return None
    claim = Claim(
        query_id=query.id,
        annotator_id=annotator_id,
        claimed_at=now,
        expires_at=now + ttl,
        swapped=bool(rng.random() < 0.5),
    )
    session.add(claim)
    session.flush()
    return _served(query, claim)


@dataclass(frozen=True)
class RecordedLabel:
    """The stored label, and whether this call created it (False: it existed already)."""

    label_id: int
    created: bool
    pref: float | None
    choice: Choice
    """The stored answer: the one just given when ``created``, else the earlier one that stands."""


def record_label(
    session: Session,
    query_id: int,
    annotator_id: int,
    choice: Choice,
    *,
    swapped: bool,
    shown_at: datetime | None = None,
) -> RecordedLabel:
    """Store an annotator's answer to a query and release their claim on it.

    Idempotent: a second submit for the same query and annotator (a double click, a retry
    after a network error) returns the existing label instead of adding one.
    """
    existing = session.scalar(select(Label).where(Label.query_id == query_id, Label.annotator_id == annotator_id))
    if existing is not None:
        return RecordedLabel(existing.id, False, existing.pref, existing.choice)
    if session.get(Query, query_id) is None:
        raise NotFoundError(f"no query with id {query_id}; it may have been deleted")
    label = Label(
        query_id=query_id,
        annotator_id=annotator_id,
        choice=choice,
        pref=pref_for(choice, swapped),
        swapped=swapped,
        shown_at=shown_at,
        answered_at=utcnow(),
    )
    try:
        with session.begin_nested():
            session.add(label)
    except IntegrityError:  # the same label arrived through another connection meanwhile
        existing = session.scalars(
            select(Label).where(Label.query_id == query_id, Label.annotator_id == annotator_id)
        ).one()
        return RecordedLabel(existing.id, False, existing.pref, existing.choice)
    session.execute(delete(Claim).where(Claim.query_id == query_id, Claim.annotator_id == annotator_id))
    return RecordedLabel(label.id, True, label.pref, label.choice)


@dataclass(frozen=True)
class UndoneLabel:
    """A label that Undo removed: its query is served again next."""

    query_id: int
    shown_at: datetime | None
    """When its pair was first shown (the person has seen it)."""


def undo_last_label(
    session: Session, project_id: int, annotator_id: int, *, ttl: timedelta = DEFAULT_CLAIM_TTL
) -> UndoneLabel | None:
    """Delete the annotator's most recent label in a project and serve that query again next.

    Returns what was removed, or None when the annotator has no label to undo.
    """
    label = session.scalar(
        select(Label)
        .join(Query, Query.id == Label.query_id)
        .where(Query.project_id == project_id, Label.annotator_id == annotator_id)
        .order_by(Label.answered_at.desc(), Label.id.desc())
        .limit(1)
    )
    if label is None:
        return None
    query_id, swapped, shown_at = label.query_id, label.swapped, label.shown_at
    session.delete(label)
    session.execute(
        delete(Claim).where(
            Claim.annotator_id == annotator_id,
            Claim.query_id.in_(select(Query.id).where(Query.project_id == project_id)),
        )
    )
    now = utcnow()
    # The claim goes back with an older timestamp so it is served before any other claim.
    session.add(
        Claim(
            query_id=query_id,
            annotator_id=annotator_id,
            claimed_at=now - timedelta(days=1),
            expires_at=now + ttl,
            swapped=swapped,
        )
    )
    session.flush()
    return UndoneLabel(query_id, as_utc(shown_at))


@dataclass(frozen=True)
class AnnotatorProgress:
    """Where one annotator stands in a project."""

    total_queries: int
    labeled_queries: int
    """Queries with at least one answer from anyone."""
    my_labels: int
    labels_per_minute: float
    """This annotator's pace over their last 10 minutes of labeling."""


#: An annotator's pace is measured over their last this many answers (of the last 10 minutes):
#: all of them were read before, 50,000 at once where answers had been written in bulk.
PACE_LABELS = 50


def annotator_progress(session: Session, project_id: int, annotator_id: int) -> AnnotatorProgress:
    """Progress of a project and the pace of one annotator in it (counters and an index range:
    as fast at a million labels as at a hundred)."""
    counters = session.execute(  # columns, not the row object: the counters move in SQL, behind the ORM
        select(Project.pair_count, Project.answered_pairs).where(Project.id == project_id)
    ).first()
    if counters is None:
        raise NotFoundError(f"no project with id {project_id}")
    my_labels = session.scalar(
        select(AnnotatorCount.answers).where(
            AnnotatorCount.project_id == project_id, AnnotatorCount.annotator_id == annotator_id
        )
    )
    since = utcnow() - timedelta(minutes=10)
    recent = sorted(  # the last PACE_LABELS answers of the last 10 minutes (an index range read backwards)
        as_utc(t)
        for t in session.scalars(
            select(Label.answered_at)
            .join(Query, Query.id == Label.query_id)
            .where(
                Label.annotator_id == annotator_id,
                Label.answered_at >= since,
                Query.project_id == project_id,
                Label.choice.in_(ANSWERED),
            )
            .order_by(Label.answered_at.desc())
            .limit(PACE_LABELS)
        )
    )
    rate = 0.0
    if len(recent) >= 2:
        span_min = max((recent[-1] - recent[0]).total_seconds() / 60, 1 / 60)
        rate = (len(recent) - 1) / span_min
    return AnnotatorProgress(int(counters.pair_count), int(counters.answered_pairs), int(my_labels or 0), rate)


def query_with_items(session: Session, query_id: int) -> tuple[Query, Item, Item]:
    """A query and its two items."""
    a, b = aliased(Item), aliased(Item)
    row = session.execute(
        select(Query, a, b)
        .join(a, a.id == Query.item_a_id)
        .join(b, b.id == Query.item_b_id)
        .where(Query.id == query_id)
    ).first()
    if row is None:
        raise NotFoundError(f"no query with id {query_id}")
    return row[0], row[1], row[2]


def existing_pairs(session: Session, project_id: int) -> set[tuple[int, int]]:
    """The (item_a_id, item_b_id) pairs a project already asks about."""
    rows = session.execute(select(Query.item_a_id, Query.item_b_id).where(Query.project_id == project_id))
    return {(int(a), int(b)) for a, b in rows}


def query_ids_by_pair(session: Session, project_id: int) -> dict[tuple[int, int], int]:
    """A project's query ids by their (item_a_id, item_b_id) pair."""
    rows = session.execute(select(Query.item_a_id, Query.item_b_id, Query.id).where(Query.project_id == project_id))
    return {(int(a), int(b)): int(q) for a, b, q in rows}


def labels_by_annotator(session: Session, project_id: int, annotator_id: int) -> dict[int, float | None]:
    """One annotator's labels in a project: pref by query id."""
    rows = session.execute(
        select(Label.query_id, Label.pref)
        .join(Query, Query.id == Label.query_id)
        .where(Query.project_id == project_id, Label.annotator_id == annotator_id)
    )
    return {int(q): (None if p is None else float(p)) for q, p in rows}


@dataclass(frozen=True)
class Comparison:
    """One label that carries a preference: P(item A preferred) = pref.

    An adjudicated pair gives one comparison, the ruling, with ``label_id`` = -query id and
    no annotator."""

    label_id: int
    item_a_id: int
    item_b_id: int
    pref: float
    annotator_id: int | None = None


def comparisons(
    session: Session, project_id: int, *, exclude_annotators: tuple[int, ...] = (), rulings: bool = True
) -> list[Comparison]:
    """What a reward model of the project trains on, oldest first: every label with a preference
    (left, right, equal), except that an adjudicated pair counts once, with the ruling, and
    the labels of ``exclude_annotators`` are left out. ``rulings=False``: every label as its
    annotator gave it, rulings ignored (a personal model learns each person's own taste,
    which a ruling on the pool's answer does not change)."""
    stmt = (
        select(Label.id, Query.item_a_id, Query.item_b_id, Label.pref, Label.annotator_id)
        .join(Query, Query.id == Label.query_id)
        .where(Query.project_id == project_id, Label.pref.is_not(None))
        .order_by(Label.id)
    )
    if rulings:
        stmt = stmt.where(Query.adjudicated_pref.is_(None))
    if exclude_annotators:
        stmt = stmt.where(Label.annotator_id.not_in(exclude_annotators))
    labels = [Comparison(int(i), int(a), int(b), float(p), int(u)) for i, a, b, p, u in session.execute(stmt)]
    if not rulings:
        return labels
    rulings = session.execute(
        select(Query.id, Query.item_a_id, Query.item_b_id, Query.adjudicated_pref)
        .where(Query.project_id == project_id, Query.adjudicated_pref.is_not(None))
        .order_by(Query.id)
    )
    return labels + [Comparison(-int(q), int(a), int(b), float(p)) for q, a, b, p in rulings]


@dataclass(frozen=True)
class LabelRow:
    """One answer, with what agreement statistics need."""

    query_id: int
    annotator_id: int
    annotator: str
    choice: Choice
    pref: float | None
    seconds: float | None
    """From when the pair was shown to the answer (None for imported labels)."""
    gold_pref: float | None
    adjudicated_pref: float | None


@dataclass(frozen=True)
class Judgement:
    """One answer (not a skip) of a pair, with who gave it and when: what an export writes."""

    label_id: int
    query_id: int
    item_a_id: int
    item_b_id: int
    choice: Choice
    pref: float | None
    """P(item A preferred); None for can't tell."""
    annotator: str
    shown_at: datetime | None
    answered_at: datetime


def judgements(session: Session, project_id: int) -> list[Judgement]:
    """Every answer of a project, oldest first."""
    rows = session.execute(
        select(
            Label.id,
            Label.query_id,
            Query.item_a_id,
            Query.item_b_id,
            Label.choice,
            Label.pref,
            Annotator.name,
            Label.shown_at,
            Label.answered_at,
        )
        .join(Query, Query.id == Label.query_id)
        .join(Annotator, Annotator.id == Label.annotator_id)
        .where(Query.project_id == project_id, Label.choice.in_(ANSWERED))
        .order_by(Label.id)
    )
    return [
        Judgement(int(i), int(q), int(a), int(b), Choice(c), None if p is None else float(p), str(n), shown, answered)
        for i, q, a, b, c, p, n, shown, answered in rows
    ]


@dataclass(frozen=True)
class Ruling:
    """An admin's answer to a pair, which training uses instead of the pair's labels."""

    query_id: int
    item_a_id: int
    item_b_id: int
    pref: float
    """P(item A preferred): 1, 0 or 0.5."""
    by: str | None
    """The admin's name (None: the account is gone)."""
    at: datetime | None


def rulings(session: Session, project_id: int) -> list[Ruling]:
    """Every pair of a project an admin ruled on, by pair."""
    rows = session.execute(
        select(Query.id, Query.item_a_id, Query.item_b_id, Query.adjudicated_pref, Annotator.name, Query.adjudicated_at)
        .outerjoin(Annotator, Annotator.id == Query.adjudicated_by)
        .where(Query.project_id == project_id, Query.adjudicated_pref.is_not(None))
        .order_by(Query.id)
    )
    return [Ruling(int(q), int(a), int(b), float(p), by, at) for q, a, b, p, by, at in rows]


def answers_state(session: Session, project_id: int) -> tuple:
    """A fingerprint of a project's answers and gold pairs, for caches of what is computed from
    them: it changes when a label is added, undone or replaced, or a gold answer set or changed."""
    labels = session.execute(
        select(func.count(Label.id), func.max(Label.id), func.max(Label.answered_at), func.sum(Label.pref))
        .join(Query, Query.id == Label.query_id)
        .where(Query.project_id == project_id)
    ).one()
    gold = session.execute(
        select(func.count(Query.gold_pref), func.sum(Query.gold_pref)).where(Query.project_id == project_id)
    ).one()
    return (*labels, *gold)


def label_rows(session: Session, project_id: int) -> list[LabelRow]:
    """Every answer (skips left out) of a project, by query."""
    rows = session.execute(
        select(
            Label.query_id,
            Label.annotator_id,
            Annotator.name,
            Label.choice,
            Label.pref,
            Label.shown_at,
            Label.answered_at,
            Query.gold_pref,
            Query.adjudicated_pref,
        )
        .join(Query, Query.id == Label.query_id)
        .join(Annotator, Annotator.id == Label.annotator_id)
        .where(Query.project_id == project_id, Label.choice.in_(ANSWERED))
        .order_by(Label.query_id, Label.id)
    )
    out = []
    for q, u, name, choice, pref, shown, answered, gold, ruling in rows:
        seconds = None
        if shown is not None and answered is not None:
            seconds = (as_utc(answered) - as_utc(shown)).total_seconds()
        out.append(LabelRow(int(q), int(u), name, choice, pref, seconds, gold, ruling))
    return out


def adjudicate(session: Session, project_id: int, query_id: int, pref: float | None, by: int | None) -> None:
    """Rule on a pair (P(item A preferred): 0, 0.5 or 1) or, with None, withdraw the ruling."""
    query = session.get(Query, query_id)
    if query is None or query.project_id != project_id:
        raise NotFoundError(f"no pair {query_id} in this project")
    query.adjudicated_pref = pref
    query.adjudicated_by = by if pref is not None else None
    query.adjudicated_at = utcnow() if pref is not None else None


def set_gold(session: Session, project_id: int, answers: dict[int, float | None]) -> None:
    """Make pairs gold with their known answers (P(item A preferred)), or, with None, ordinary again."""
    found = list(session.scalars(select(Query).where(Query.project_id == project_id, Query.id.in_(answers))))
    missing = set(answers) - {q.id for q in found}
    if missing:
        raise NotFoundError(f"no pairs {sorted(missing)} in this project")
    for query in found:
        query.gold_pref = answers[query.id]


def gold_count(session: Session, project_id: int) -> int:
    """How many of a project's pairs are gold."""
    return int(
        session.scalar(select(func.count(Query.id)).where(Query.project_id == project_id, Query.gold_pref.is_not(None)))
        or 0
    )


def comparison_count(session: Session, project_id: int, *, since: datetime | None = None) -> int:
    """How many labels of a project carry a preference (what :func:`comparisons` lists, before
    rulings merge a pair's labels); ``since``: only those given after that moment."""
    stmt = (
        select(func.count(Label.id))
        .join(Query, Query.id == Label.query_id)
        .where(Query.project_id == project_id, Label.pref.is_not(None))
    )
    if since is not None:
        stmt = stmt.where(Label.answered_at > since)
    return int(session.scalar(stmt) or 0)


def pending_queries(session: Session, project_id: int, annotator_id: int, limit: int) -> list[Query]:
    """Queries that still need labels, that this annotator has not answered and that no one else
    holds, by priority (what a scripted teacher labels)."""
    project = session.get(Project, project_id)
    if project is None:
        raise NotFoundError(f"no project with id {project_id}")
    return list(session.scalars(_open_for(project, annotator_id, (), others_only=True).limit(limit)))


def unlabeled_queries(session: Session, project_id: int) -> list[Query]:
    """Queries of a project with no answer yet."""
    answered = select(Label.id).where(Label.query_id == Query.id, Label.choice.in_(ANSWERED)).correlate(Query)
    return list(session.scalars(select(Query).where(Query.project_id == project_id, ~answered.exists())))


def set_query_priorities(session: Session, project_id: int, priorities: dict[int, float]) -> None:
    """Give the project's still-unlabeled queries new serving priorities (by query id; others keep theirs)."""
    if not priorities:
        return
    for query in unlabeled_queries(session, project_id):
        if query.id in priorities:
            query.priority = priorities[query.id]


def restore_query_priorities(session: Session, priorities: dict[int, float]) -> None:
    """Put back the priorities of queries (by id), labeled or not: undoes a withdrawn model's ranking."""
    if not priorities:
        return
    for query in session.scalars(select(Query).where(Query.id.in_(priorities))):
        query.priority = priorities[query.id]


def top_priority(session: Session, project_id: int) -> float:
    """The highest serving priority among the project's queries (0 when it has none)."""
    return float(session.scalar(select(func.max(Query.priority)).where(Query.project_id == project_id)) or 0.0)


def add_queries(
    session: Session, project_id: int, pairs: list[tuple[int, int]], method: str, priorities: list[float] | None = None
) -> list[int]:
    """Ask about pairs of items: one query per unordered pair the project does not ask about yet
    (stored as (lower id, higher id); repeats and pairs already present are skipped). Returns the
    new queries' ids."""
    taken = existing_pairs(session, project_id)
    new: list[Query] = []
    for k, (a, b) in enumerate(pairs):
        pair = (min(a, b), max(a, b))
        if pair in taken:
            continue
        taken.add(pair)
        priority = 0.0 if priorities is None else float(priorities[k])
        new.append(Query(project_id=project_id, item_a_id=pair[0], item_b_id=pair[1], method=method, priority=priority))
    session.add_all(new)
    session.flush()
    return [q.id for q in new]


def add_imported_label(session: Session, query_id: int, annotator_id: int, choice: Choice) -> float | None:
    """Record a label that arrived in a file (no one was shown the pair): as if shown in id
    order, item A on the left. Returns its preference."""
    pref = pref_for(choice, False)
    session.add(
        Label(query_id=query_id, annotator_id=annotator_id, choice=choice, pref=pref, swapped=False, shown_at=None)
    )
    return pref
