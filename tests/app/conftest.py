"""Fixtures of the app tests."""

from __future__ import annotations

import pytest

from app.services import labeling


@pytest.fixture
def instant_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """AppTest clicks as soon as a pair is served; a person cannot. Tests that are not about
    the minimum viewing time turn it off (the page runs in this process, so the patch holds)."""
    monkeypatch.setattr(labeling, "MIN_VIEW_SECONDS", 0.0)
