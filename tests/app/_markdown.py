"""What a Markdown string escaped by ``app.ui.display.md`` shows: its characters, unescaped."""

from __future__ import annotations

import re
import string

_ESCAPED = re.compile(r"\\([" + re.escape(string.punctuation) + "])")


def shown(markdown: str) -> str:
    """The text that ``markdown`` (escaped punctuation, zero-width spaces after colons) renders to."""
    return _ESCAPED.sub(r"\1", markdown).replace("\u200b", "")
