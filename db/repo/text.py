"""Text projects: items by (prompt, response), and every judgement for export."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from db.models import (
    Annotator,
    Choice,
    Item,
    Label,
    Query,
)
from db.repo.choices import ANSWERED


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


def text_judgements(session: Session, project_id: int) -> list[TextJudgement]:
    """Every answered label of a text project with its prompt and both responses, oldest first."""
    a, b = aliased(Item), aliased(Item)
    rows = session.execute(
        select(Label.id, a.prompt, a.text, b.text, Label.choice, Label.pref, Annotator.name)
        .join(Query, Query.id == Label.query_id)
        .join(a, a.id == Query.item_a_id)
        .join(b, b.id == Query.item_b_id)
        .join(Annotator, Annotator.id == Label.annotator_id)
        .where(Query.project_id == project_id, Label.choice.in_(ANSWERED))
        .order_by(Label.id)
    )
    return [
        TextJudgement(int(i), str(p), str(ta), str(tb), Choice(c), None if pref is None else float(pref), str(n))
        for i, p, ta, tb, c, pref, n in rows
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
