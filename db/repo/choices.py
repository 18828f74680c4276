"""The rule that turns an on-screen choice into a preference, and which choices count as answers."""

from __future__ import annotations

from db.models import (
    Choice,
)

#: Choices that count as an answer for completing a query (skips do not).
ANSWERED = (Choice.left, Choice.right, Choice.equal, Choice.cant_tell)


def pref_for(choice: Choice, swapped: bool) -> float | None:
    """P(item A preferred) for an on-screen choice; None when it carries no preference."""
    if choice is Choice.equal:
        return 0.5
    if choice is Choice.left:
        return 0.0 if swapped else 1.0
    if choice is Choice.right:
        return 1.0 if swapped else 0.0
    return None
