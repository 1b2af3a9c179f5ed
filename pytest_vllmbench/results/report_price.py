"""A GPU price applied when the report is made, to saved cells that carry no price of their own (runs made before
the price was known, e.g. on a lent GPU). A cell's own price always wins; CPU cells (no GPU) are never priced."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.measure.costs import cost_figures
from pytest_vllmbench.results.saved_run import SavedCell, is_ok
from pytest_vllmbench.results.storage import SavedRun

MARK = "†"  # beside every cost the report priced itself
SOURCE_KEY = "cost_priced_at"  # "report" on cells priced here; never saved


@dataclass(frozen=True)
class ReportPrice:
    hourly_cost: float  # one GPU for one hour
    currency: str | None = None

    def text(self) -> str:
        """'$2.50/GPU-h' for USD, '2.5 EUR/GPU-h' otherwise."""
        if (self.currency or "").upper() == "USD":
            return f"${self.hourly_cost:,.2f}/GPU-h"
        return f"{self.hourly_cost:g}" + (f" {self.currency}" if self.currency else "") + "/GPU-h"


def parse_price(value: Any, where: str) -> float | None:
    """A finite price >= 0 from the command line or [tool.vllmbench]; None when not given."""
    if value is None or value == "":
        return None
    try:
        price = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{where} expects a number (one GPU's price per hour), got {value!r}") from None
    if not math.isfinite(price) or price < 0:
        raise UsageError(f"{where} expects a finite number >= 0, got {value!r}")
    return price


def price_cell(cell: SavedCell, price: ReportPrice | None) -> SavedCell:
    """The cell with its cost figures at `price` when it ran on GPUs, was measured and saved no price."""
    gpus = cell.gpus or []
    if price is None or cell.gpu_hourly_cost is not None or not gpus or not is_ok(cell):
        return cell
    figures = cost_figures(price.hourly_cost, price.currency, len(gpus), cell.output_tokens_per_s, cell.projected_hours)
    return cell.with_figures({**figures, SOURCE_KEY: "report"})


def price_runs(runs: list[SavedRun], price: ReportPrice | None) -> list[SavedRun]:
    if price is None:
        return runs
    return [replace(run, cells=[price_cell(cell, price) for cell in run.cells]) for run in runs]


def priced_here(cell: Mapping[str, Any]) -> bool:
    return cell.get(SOURCE_KEY) == "report"


def note(price: ReportPrice | None, runs: list[SavedRun]) -> str:
    """The sentence that says which costs the report priced itself, or '' when it priced none."""
    if price is None or not any(priced_here(cell) for run in runs for cell in run.cells):
        return ""
    return (
        f"{MARK} at {price.text()}, report-time price (`gpu_hourly_cost`): those runs saved no price of their "
        "own; cost = projected hours x the cell's GPUs x the price."
    )
