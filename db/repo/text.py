"""Text projects: items by (prompt, response), and every judgement for export."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, aliased

from db import names
from db.models import (
    Annotator,
    AnnotatorCount,
    Choice,
    Item,
    Label,
    Project,
    Query,
    utcnow,
)
from db.repo.choices import ANSWERED, pref_for


def text_key(*parts: str) -> bytes:
    """A 128-bit key of some strings (their lengths included, so no two tuples share one):
    what an import deduplicates responses by without holding their text."""
    hasher = hashlib.blake2b(digest_size=16)
    for part in parts:
        raw = part.encode("utf-8", "surrogatepass")
        hasher.update(len(raw).to_bytes(8, "little"))
        hasher.update(raw)
    return hasher.digest()


@dataclass(frozen=True)
class ImportCounts:
    """What a :class:`TextImport` added."""

    items_added: int
    pairs_added: int
    labels_added: int
    labels_present: int
    """Pairs that already had an import label with the same answer."""
    labels_conflicting: int
    """Pairs that already had an import label with the other answer (the stored one is kept)."""


class TextImport:
    """Write the lines of an import file into a text project, batch by batch, with bulk inserts.

    Responses are deduplicated by (prompt, text) and pairs by their two responses, against
    the project and the earlier batches; for a labeled file, a pair gets one label by the
    ``import`` annotator (as if shown in id order: left is item A). Memory holds a 16-byte
    key per response and an id pair per pair, never the text. The progress counters that
    the ORM's events keep for single rows (db.models) are moved here once per batch.
    """

    def __init__(self, session: Session, project_id: int, *, labeled: bool) -> None:
        self.session, self.project_id = session, project_id
        self.items: dict[bytes, int] = {}
        rows = session.execute(
            select(Item.prompt, Item.text, Item.id)
            .where(Item.project_id == project_id, Item.prompt.is_not(None), Item.text.is_not(None))
            .execution_options(yield_per=10_000)
        )
        for prompt, text, item_id in rows:
            self.items[text_key(str(prompt), str(text))] = int(item_id)
        self.pairs: dict[int, int] = {
            (int(a) << 64) | int(b): int(q)
            for a, b, q in session.execute(
                select(Query.item_a_id, Query.item_b_id, Query.id).where(Query.project_id == project_id)
            )
        }
        self.annotator_id: int | None = None
        self.answered: dict[int, float | None] = {}
        if labeled:
            from db.repo.labeling import labels_by_annotator
            from db.repo.projects import get_or_create_annotator

            annotator = get_or_create_annotator(session, names.IMPORT_ANNOTATOR, role="import")
            self.annotator_id = annotator.id
            self.answered = labels_by_annotator(session, project_id, annotator.id)
        self._counts = dict.fromkeys(ImportCounts.__dataclass_fields__, 0)

    def add(self, rows: Sequence[tuple[str, str, str]], rng: np.random.Generator) -> None:
        """Add a batch of (prompt, first, second) lines; ``first`` is the chosen response in a
        labeled file. New responses are stored in an order ``rng`` shuffles."""
        keys = [(text_key(p, first), text_key(p, second)) for p, first, second in rows]
        new: dict[bytes, tuple[str, str]] = {}
        for (p, first, second), (ka, kb) in zip(rows, keys, strict=True):
            for key, text in ((ka, first), (kb, second)):
                if key not in self.items and key not in new:
                    new[key] = (p, text)
        if new:
            order = [list(new)[i] for i in rng.permutation(len(new))]
            now = utcnow()
            ids = self.session.scalars(
                insert(Item).returning(Item.id, sort_by_parameter_order=True),
                [
                    {"project_id": self.project_id, "prompt": new[k][0], "text": new[k][1], "created_at": now}
                    for k in order
                ],
            ).all()
            self.items.update(zip(order, map(int, ids), strict=True))
            self._counts["items_added"] += len(order)
        pairs = [(self.items[ka], self.items[kb]) for ka, kb in keys]
        fresh: dict[int, tuple[int, int]] = {}
        for a, b in pairs:
            low, high = min(a, b), max(a, b)
            key = (low << 64) | high
            if key not in self.pairs and key not in fresh:
                fresh[key] = (low, high)
        if fresh:
            now = utcnow()
            ids = self.session.scalars(
                insert(Query).returning(Query.id, sort_by_parameter_order=True),
                [{"project_id": self.project_id, "item_a_id": a, "item_b_id": b, "method": "import",
                  "priority": 0.0, "answered": 0, "created_at": now} for a, b in fresh.values()],
            ).all()  # fmt: skip
            self.pairs.update(zip(fresh, map(int, ids), strict=True))
            self._counts["pairs_added"] += len(fresh)
            self._move("pair_count", len(fresh))
        if self.annotator_id is not None:
            self._label(pairs)

    def _label(self, pairs: list[tuple[int, int]]) -> None:
        labels: list[dict[str, object]] = []
        now = utcnow()
        for chosen, rejected in pairs:
            query_id = self.pairs[(min(chosen, rejected) << 64) | max(chosen, rejected)]
            choice = Choice.left if chosen < rejected else Choice.right  # as if shown in id order
            pref = pref_for(choice, False)
            if query_id in self.answered:
                same = self.answered[query_id] == pref
                self._counts["labels_present" if same else "labels_conflicting"] += 1
                continue
            self.answered[query_id] = pref
            labels.append(
                {"query_id": query_id, "annotator_id": self.annotator_id, "choice": choice, "pref": pref,
                 "swapped": False, "shown_at": None, "answered_at": now}
            )  # fmt: skip
        if not labels:
            return
        self.session.execute(insert(Label), labels)
        answered = self.session.scalars(
            update(Query)
            .where(Query.id.in_([row["query_id"] for row in labels]))
            .values(answered=Query.answered + 1)
            .returning(Query.answered),
            execution_options={"synchronize_session": False},
        ).all()
        self._counts["labels_added"] += len(labels)
        self._move("answer_count", len(labels))
        self._move("answered_pairs", sum(1 for n in answered if n == 1))

    def _move(self, counter: str, step: int) -> None:
        if step:
            column = getattr(Project, counter)
            self.session.execute(
                update(Project).where(Project.id == self.project_id).values({column: column + step}),
                execution_options={"synchronize_session": False},
            )

    def finish(self) -> ImportCounts:
        """Credit the import annotator's answers and flush; what was added."""
        added = self._counts["labels_added"]
        if added and self.annotator_id is not None:
            row = self.session.get(AnnotatorCount, (self.project_id, self.annotator_id))
            if row is None:
                self.session.add(
                    AnnotatorCount(project_id=self.project_id, annotator_id=self.annotator_id, answers=added)
                )
            else:
                row.answers += added
        self.session.flush()
        return ImportCounts(**self._counts)


def text_item_ids(session: Session, project_id: int) -> dict[tuple[str, str], int]:
    """A text project's items by (prompt, response text): what an import deduplicates against."""
    rows = session.execute(
        select(Item.prompt, Item.text, Item.id).where(
            Item.project_id == project_id, Item.prompt.is_not(None), Item.text.is_not(None)
        )
    )
    return {(str(prompt), str(text)): int(item_id) for prompt, text, item_id in rows}


@dataclass(frozen=True)
class TextJudgement:
    """One answer about a pair of responses to one prompt (skips excluded)."""

    label_id: int
    prompt: str
    text_a: str
    text_b: str
    choice: Choice
    pref: float | None
    """P(response A preferred); None for can't tell."""
    annotator: str
    shown_at: datetime | None = None
    answered_at: datetime | None = None
    query_id: int | None = None


def text_judgements(session: Session, project_id: int) -> list[TextJudgement]:
    """Every answered label of a text project with its prompt and both responses, oldest first."""
    a, b = aliased(Item), aliased(Item)
    rows = session.execute(
        select(
            Label.id,
            a.prompt,
            a.text,
            b.text,
            Label.choice,
            Label.pref,
            Annotator.name,
            Label.shown_at,
            Label.answered_at,
            Query.id,
        )
        .join(Query, Query.id == Label.query_id)
        .join(a, a.id == Query.item_a_id)
        .join(b, b.id == Query.item_b_id)
        .join(Annotator, Annotator.id == Label.annotator_id)
        .where(Query.project_id == project_id, Label.choice.in_(ANSWERED))
        .order_by(Label.id)
    )
    return [
        TextJudgement(
            int(i),
            str(p),
            str(ta),
            str(tb),
            Choice(c),
            None if pref is None else float(pref),
            str(n),
            shown,
            answered,
            int(q),
        )  # fmt: skip
        for i, p, ta, tb, c, pref, n, shown, answered, q in rows
    ]


def bulk_labeled_text_project(
    session: Session, name: str, *, pairs: int, labels: int, annotators: int, chunk: int = 20_000
) -> int:
    """A text project of ``pairs`` pairs with ``labels`` answers spread over ``annotators``
    people, written with bulk inserts (for benchmarks at team size; the progress counters
    are set as the labels would have set them). Returns the project id."""
    from sqlalchemy import insert

    from db.models import Annotator, AnnotatorCount, Choice, Item, Label, Project, ProjectKind, Query, utcnow

    per_pair = -(-labels // pairs) if pairs else 0
    if per_pair > annotators:
        raise ValueError(f"{labels} labels on {pairs} pairs need at least {per_pair} annotators")
    project = Project(name=name, kind=ProjectKind.text, env_id=None, config={}, labels_per_query=per_pair + 2)
    session.add(project)
    session.flush()
    now = utcnow()
    people = [Annotator(name=f"{name}-annotator-{i}") for i in range(annotators)]
    session.add_all(people)
    session.flush()
    first_item = None
    for start in range(0, 2 * pairs, chunk):
        rows = [
            {"project_id": project.id, "prompt": f"prompt {i // 2}", "text": f"response {i}", "created_at": now}
            for i in range(start, min(2 * pairs, start + chunk))
        ]
        session.execute(insert(Item), rows)
    first_item = session.scalar(select(Item.id).where(Item.project_id == project.id).order_by(Item.id).limit(1))
    for start in range(0, pairs, chunk):
        stop = min(pairs, start + chunk)
        answered = [max(0, min(per_pair, (labels - q + pairs - 1) // pairs)) for q in range(start, stop)]
        session.execute(
            insert(Query),
            [
                {"project_id": project.id, "item_a_id": first_item + 2 * q, "item_b_id": first_item + 2 * q + 1,
                 "method": "random", "priority": 0.0, "answered": n, "created_at": now}
                for q, n in zip(range(start, stop), answered, strict=True)
            ],
        )  # fmt: skip
    first_query = session.scalar(select(Query.id).where(Query.project_id == project.id).order_by(Query.id).limit(1))
    mine = [0] * annotators
    for start in range(0, labels, chunk):
        rows = []
        for j in range(start, min(labels, start + chunk)):
            who = (j // pairs) % annotators
            mine[who] += 1
            rows.append(
                {"query_id": first_query + j % pairs, "annotator_id": people[who].id, "choice": Choice.left,
                 "pref": 1.0, "swapped": False, "shown_at": now, "answered_at": now}
            )  # fmt: skip
        session.execute(insert(Label), rows)
    project.answer_count = labels
    project.answered_pairs = min(labels, pairs)
    project.pair_count = pairs
    counts = [{"project_id": project.id, "annotator_id": p.id, "answers": n} for p, n in zip(people, mine, strict=True)]
    if any(c["answers"] for c in counts):
        session.execute(insert(AnnotatorCount), [c for c in counts if c["answers"]])
    return project.id
