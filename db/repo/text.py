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
