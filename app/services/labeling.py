"""Use cases of the labeling page: who labels, the next pair, answers, undo and progress.

One flow for both kinds of project: a trajectory project's pair comes with its side-by-side
clip, a text project's pair with its prompt and the two responses in the order shown.
Every answer is committed (SQLite ``synchronous=FULL``) before these functions return, so
the UI may acknowledge a label as soon as :func:`submit_label` returns, and only then.

An answer names the pair it answers and when that pair was shown. :func:`submit_label`
refuses an answer that came sooner than :data:`MIN_VIEW_SECONDS` after its pair was shown
(a second key press that landed on the next pair, which nobody has watched yet), and it
stores nothing for a pair this annotator has already answered (a second tab): the result
says so, and the page tells the person instead of saying "Saved".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from app.config import Studio
from app.services.clips import ClipUnavailableError, ensure_clip
from db import repo
from db.engine import session_scope
from db.models import Choice, ProjectKind, utcnow
from rlhf_core.errors import StudioError

MIN_VIEW_SECONDS = 0.5
"""Shortest time a pair must have been on screen before an answer to it counts.

A person cannot compare two clips (or two responses) in half a second, while the second
press of a fast double press (0-150 ms apart) reaches the server about 0.1 s after the next
pair was served. The time each pair was shown is stored with its label (``shown_at``,
``answered_at``)."""


class AnswerTooSoonError(StudioError):
    """An answer that arrived before its pair can have been looked at; nothing was stored."""

    def __init__(self, shown_for: float) -> None:
        super().__init__(
            f"Not stored: that answer came {shown_for:.2f} s after this pair appeared, too soon to have "
            "watched it (a second key press?). Look at this pair and answer again."
        )
        self.shown_for = shown_for


@dataclass(frozen=True)
class LabelingSession:
    """A project and an annotator, resolved to ids."""

    project_id: int
    project_name: str
    annotator_id: int
    annotator_name: str
    guidelines: str
    fps: float
    kind: ProjectKind
    """What the project compares: clips (trajectory) or responses to a prompt (text)."""


@dataclass(frozen=True)
class PairTexts:
    """A text pair as shown: the prompt, and the left and right responses (raw, never rendered)."""

    prompt: str
    left: str
    right: str


@dataclass(frozen=True)
class Pair:
    """A pair served to an annotator, in the order it is shown."""

    query_id: int
    swapped: bool
    """Item B is on the left."""
    left_item_id: int
    right_item_id: int
    shown_at: datetime
    clip: Path | None
    """The side-by-side clip, or None when it cannot be shown (see ``clip_error``); None in text projects."""
    clip_error: str | None = None
    texts: PairTexts | None = None
    """The prompt and responses of a text project's pair; None in trajectory projects."""

    @property
    def viewable(self) -> bool:
        """Whether the pair can be shown, and so answered (a skip is always possible)."""
        return self.clip is not None or self.texts is not None


def open_session(studio: Studio, project_name: str, annotator_name: str) -> LabelingSession:
    """Resolve a project by name and an annotator by name (created on first use)."""
    with session_scope(studio.engine, write=True) as session:
        project = repo.get_project(session, project_name)
        annotator = repo.get_or_create_annotator(session, annotator_name)
        return LabelingSession(
            project_id=project.id,
            project_name=project.name,
            annotator_id=annotator.id,
            annotator_name=annotator.name,
            guidelines=project.guidelines,
            fps=float(project.config.get("fps", 10)),
            kind=project.kind,
        )


def next_pair(
    studio: Studio,
    ls: LabelingSession,
    *,
    rng: np.random.Generator,
    exclude: tuple[int, ...] = (),
    undone: repo.UndoneLabel | None = None,
) -> Pair | None:
    """Reserve and return the next pair for the annotator, or None when none is left.

    ``undone``: the label an Undo just removed. Its pair comes back with the time it was first
    shown, so a quick correction after Undo is not refused as unwatched.
    """
    with session_scope(studio.engine, write=True) as session:
        served = repo.claim_next_query(session, ls.project_id, ls.annotator_id, rng=rng, exclude=exclude)
        if served is None:
            return None
        _query, item_a, item_b = repo.query_with_items(session, served.query_id)
    left, right = (item_b, item_a) if served.swapped else (item_a, item_b)
    shown_at = utcnow()
    if undone is not None and undone.query_id == served.query_id and undone.shown_at is not None:
        shown_at = undone.shown_at
    if ls.kind is ProjectKind.text:
        texts = PairTexts(prompt=left.prompt or "", left=left.text or "", right=right.text or "")
        return Pair(served.query_id, served.swapped, left.id, right.id, shown_at, None, None, texts)
    clip: Path | None = None
    error = None
    try:
        clip = ensure_clip(studio, left.clip_file, right.clip_file, ls.fps)
    except ClipUnavailableError as exc:
        error = f"{exc}. Skip this pair (S) to go on; the others are unaffected."
    return Pair(served.query_id, served.swapped, left.id, right.id, shown_at, clip, error)


def submit_label(studio: Studio, ls: LabelingSession, pair: Pair, choice: Choice) -> repo.RecordedLabel:
    """Store the annotator's answer to ``pair``, the pair that was on screen; durable when this returns.

    Raises AnswerTooSoonError (nothing stored) when ``pair`` was shown less than
    :data:`MIN_VIEW_SECONDS` ago. When the annotator has answered this pair already (in
    another tab, or a retry), nothing is stored and the result has ``created=False`` and
    the stored answer's ``choice``.
    """
    shown_for = (utcnow() - pair.shown_at).total_seconds()
    if shown_for < MIN_VIEW_SECONDS and (pair.viewable or choice is not Choice.skip):  # nothing to watch: skip
        raise AnswerTooSoonError(max(shown_for, 0.0))
    with session_scope(studio.engine, write=True) as session:
        return repo.record_label(
            session, pair.query_id, ls.annotator_id, choice, swapped=pair.swapped, shown_at=pair.shown_at
        )


def undo_last(studio: Studio, ls: LabelingSession) -> repo.UndoneLabel | None:
    """Remove the annotator's last label; its pair is served again next. None: nothing to undo."""
    with session_scope(studio.engine, write=True) as session:
        return repo.undo_last_label(session, ls.project_id, ls.annotator_id)


def progress(studio: Studio, ls: LabelingSession) -> repo.AnnotatorProgress:
    """Project progress and the annotator's pace."""
    with session_scope(studio.engine) as session:
        return repo.annotator_progress(session, ls.project_id, ls.annotator_id)


def predicted_rewards(studio: Studio, ls: LabelingSession, pair: Pair) -> dict | None:
    """The active reward model's per-step rewards of the left and right clip (valid steps only)."""
    from app.services.rewards import predicted_step_rewards

    with session_scope(studio.engine) as session:
        project = repo.get_project(session, ls.project_name)
    found = predicted_step_rewards(studio, project, [pair.left_item_id, pair.right_item_id])
    if found is None:
        return None
    rewards, valid = found["rewards"], found["valid"]
    return {"version": found["version"], "left": rewards[0][valid[0]], "right": rewards[1][valid[1]]}
