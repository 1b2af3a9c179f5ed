"""Long values cut short before they go into a message: one bad 1 MB field must not flood every error line."""

from __future__ import annotations

import re
from typing import Any

SHOWN_CHARS = 60
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def cut(text: str, limit: int = SHOWN_CHARS) -> str:
    """`text` itself when short, else its first `limit` characters and how long the whole was."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def shown(value: Any, limit: int = SHOWN_CHARS) -> str:
    """`repr(value)` cut to `limit` characters: how messages quote a value read from a file."""
    if isinstance(value, str) and len(value) > limit:  # never build the repr of a huge string
        return cut(repr(value[: limit + 1]), limit) + f" ({len(value)} characters)"
    if isinstance(value, (list, dict)) and len(value) > limit:
        return f"a {type(value).__name__} of {len(value)} items"
    return cut(repr(value), limit)


def key_text(key: str, limit: int = SHOWN_CHARS) -> str:
    """A key read from a file as a message names it: as it is when printable, else quoted with its escapes (a
    control character would break the message's line or reach the terminal, a lone surrogate cannot be printed)."""
    return cut(key, limit) if key.isprintable() and key else shown(key, limit)


def one_line(text: str) -> str:
    """Control characters and line separators as spaces: text read from a file stays on the line it is shown on (a
    line break in a saved name would start a line of its own in a report, a heading or a marker)."""
    return _CONTROL.sub(" ", text)
