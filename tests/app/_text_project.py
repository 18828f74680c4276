"""A small text project (prompt + response items, labeled pairs) written straight into the store."""

from __future__ import annotations

from pathlib import Path

from app.config import Settings, Studio
from db import repo
from db.engine import session_scope
from db.models import Choice, Item, Label, Project, ProjectKind, Query
from rlhf_core.demo_data.text import sentiment_examples

PROJECT = "reviews"
PROMPT = "How was it?"


def build(data_dir: Path, *, n_pairs: int = 30, name: str = PROJECT) -> Studio:
    """Project ``name``: n_pairs queries of a positive and a negative review, each labeled (positive wins)."""
    texts, labels = sentiment_examples()
    pos = [t for t, lab in zip(texts, labels, strict=True) if lab == "positive"]
    neg = [t for t, lab in zip(texts, labels, strict=True) if lab == "negative"]
    studio = Studio(Settings.from_env(data_dir))
    with session_scope(studio.engine, write=True) as session:
        project = Project(name=name, kind=ProjectKind.text, env_id=None, config={})
        session.add(project)
        session.flush()
        annotator = repo.get_or_create_annotator(session, "alice")
        for i in range(n_pairs):
            first, second = (pos[i], neg[i]) if i % 2 else (neg[i], pos[i])  # the winner is A or B in turn
            a = Item(project_id=project.id, prompt=PROMPT, text=first)
            b = Item(project_id=project.id, prompt=PROMPT, text=second)
            session.add_all([a, b])
            session.flush()
            query = Query(project_id=project.id, item_a_id=a.id, item_b_id=b.id)
            session.add(query)
            session.flush()
            a_wins = first == pos[i]
            choice = Choice.left if a_wins else Choice.right
            session.add(
                Label(
                    query_id=query.id,
                    annotator_id=annotator.id,
                    choice=choice,
                    pref=repo.pref_for(choice, False),
                    swapped=False,
                )
            )
    return studio


def pairs(n_pairs: int = 30) -> list[tuple[str, str]]:
    """The (positive, negative) reviews :func:`build` pairs, in its order."""
    texts, labels = sentiment_examples()
    pos = [t for t, lab in zip(texts, labels, strict=True) if lab == "positive"]
    neg = [t for t, lab in zip(texts, labels, strict=True) if lab == "negative"]
    return list(zip(pos[:n_pairs], neg[:n_pairs], strict=True))
