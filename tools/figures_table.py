"""Rewrite the figure rows of docs/figures.md from measure/cell_record.py's CellRecord (order, unit, direction,
description), keeping the page's other text: run it after declaring a figure; a test checks the two agree."""

import re
import sys
from pathlib import Path

from pytest_vllmbench.measure.cell_record import FIGURES

PAGE = Path(__file__).resolve().parents[1] / "docs" / "figures.md"
ROW = re.compile(r"^\| `([a-z0-9_]+)` \|")


def row(name: str) -> str:
    figure = FIGURES[name]
    doc = figure.doc + (" (only where it applies)" if figure.sometimes else "")
    return f"| `{name}` | {figure.unit} | {figure.better or ''} | {doc} |"


def main() -> int:
    lines = PAGE.read_text(encoding="utf-8").split("\n")
    at = [i for i, line in enumerate(lines) if ROW.match(line)]
    if not at:
        print(f"{PAGE}: no figure table found", file=sys.stderr)
        return 1
    table = [row(name) for name in FIGURES]
    lines[at[0] : at[-1] + 1] = table
    PAGE.write_text("\n".join(lines), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
