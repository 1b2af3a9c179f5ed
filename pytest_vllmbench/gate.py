"""Regression gates: METRIC:CHANGE rules checked cell by cell against a baseline run."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tabulate import tabulate

from pytest_vllmbench.errors import UsageError

HIGHER_IS_BETTER = frozenset({
    "requests_per_s", "output_tokens_per_s", "total_tokens_per_s", "goodput_requests_per_s",
    "quality_valid_rate", "quality_accuracy", "score", "roofline_pct",
})
LOWER_IS_BETTER_SUFFIXES = ("_ms_mean", "_ms_p50", "_ms_p90", "_ms_p99")
LOWER_IS_BETTER = frozenset({"load_s", "wall_s", "projected_hours", "peak_vram_mib", "n_failed"})
_RULE = re.compile(r"^(?P<metric>[a-z0-9_]+):(?P<change>[+-]?\d+(\.\d+)?)%$")


def higher_is_better(metric: str) -> bool:
    if metric in HIGHER_IS_BETTER:
        return True
    if metric in LOWER_IS_BETTER or metric.endswith(LOWER_IS_BETTER_SUFFIXES):
        return False
    raise UsageError(f"cannot gate on {metric!r}: its better direction is unknown")


@dataclass(frozen=True)
class Rule:
    metric: str
    tolerance_pct: float  # how much worse the metric may get, in percent

    @classmethod
    def parse(cls, text: str) -> Rule:
        match = _RULE.match(text.strip())
        if not match:
            raise UsageError(f"gate rule {text!r}: expected METRIC:CHANGE%, e.g. output_tokens_per_s:-5%")
        metric, change = match["metric"], float(match["change"])
        better_up = higher_is_better(metric)
        if (better_up and change > 0) or (not better_up and change < 0):
            worse = "a drop" if better_up else "a rise"
            raise UsageError(f"gate rule {text!r}: for {metric} a regression is {worse}; write "
                             f"{metric}:{'-' if better_up else '+'}{abs(change):g}%")
        return cls(metric, abs(change))


@dataclass(frozen=True)
class Check:
    cell: str
    metric: str
    baseline: float | None
    current: float | None
    change_pct: float | None
    tolerance_pct: float
    verdict: str  # ok | REGRESSION | missing


def _change_pct(baseline: float, current: float) -> float:
    if baseline == 0:
        return 0.0 if current == 0 else float("inf") * (1 if current > 0 else -1)
    return (current - baseline) / abs(baseline) * 100.0


def check(
    current: Mapping[str, Mapping[str, Any]], baseline: Mapping[str, Mapping[str, Any]], rules: Sequence[Rule]
) -> list[Check]:
    """Cells are matched by id; a cell or metric absent on either side is reported, not failed."""
    checks = []
    for cell_id in sorted(current):
        for rule in rules:
            now = current[cell_id].get(rule.metric)
            before = baseline.get(cell_id, {}).get(rule.metric)
            if now is None or before is None:
                checks.append(Check(cell_id, rule.metric, before, now, None, rule.tolerance_pct, "missing"))
                continue
            change = _change_pct(before, now)
            worse_by = -change if higher_is_better(rule.metric) else change
            verdict = "REGRESSION" if worse_by > rule.tolerance_pct else "ok"
            checks.append(Check(cell_id, rule.metric, before, now, change, rule.tolerance_pct, verdict))
    return checks


def table(checks: Sequence[Check]) -> str:
    rows = [
        [c.cell, c.metric, _num(c.baseline), _num(c.current),
         "-" if c.change_pct is None else f"{c.change_pct:+.1f}%", f"{c.tolerance_pct:g}%", c.verdict]
        for c in checks
    ]
    return tabulate(rows, ["Cell", "Metric", "Baseline", "Current", "Change", "Allowed worse", "Verdict"],
                    tablefmt="simple", disable_numparse=True)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:,.3f}"


def regressions(checks: Sequence[Check]) -> list[Check]:
    return [c for c in checks if c.verdict == "REGRESSION"]
