"""Pipe tables for BENCHMARKS.md, one row per line and no padding.

Padded columns (tabulate's "github") widen every row to the table's longest cell, so one new long status
rewrote every line of a table in the file's diff and doubled its size; renderers show both forms alike.
"""

from __future__ import annotations

from collections.abc import Sequence


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return " ".join(text.split()).replace("|", "\\|")


def markdown_table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> str:
    """A Markdown pipe table: `| a | b |` rows under a `|---|---|` rule; a `|` inside a cell is escaped."""
    if not headers:
        raise ValueError("a table needs at least one column")
    uneven = [len(row) for row in rows if len(row) != len(headers)]
    if uneven:
        raise ValueError(f"a row of {uneven[0]} cells under {len(headers)} headers")
    lines = ["| " + " | ".join(_cell(header) for header in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)
