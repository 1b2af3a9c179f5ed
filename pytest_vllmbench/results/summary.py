"""The end-of-session summary: one table of the cells' figures, the gate verdicts, where things were saved."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tabulate import tabulate

from pytest_vllmbench.measure.engine_settings import differing
from pytest_vllmbench.measure.host_load import FIGURE
from pytest_vllmbench.measure.rounds import plus_minus
from pytest_vllmbench.results.gate import Check, missing_data, regressions
from pytest_vllmbench.results.gate import summary as gate_summary

MISSING = "-"
NOT_MEASURED = "not measured"
COST_KEY = "projected_cost"  # the whole job's cost, in `cost_currency`; null unless an hourly price was given


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _num(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:,.{digits}f}"


def latency_pair(cell: Mapping[str, Any], metric: str) -> str:
    """`p50 / p99` in ms as the tables show them; a missing or non-finite figure is `-`."""
    p50, p99 = cell.get(f"{metric}_ms_p50"), cell.get(f"{metric}_ms_p99")
    if metric in (cell.get("not_measured") or ()):  # the mode cannot see it (run-batch, ray): not a gap to fill
        return NOT_MEASURED
    if not _finite(p50):
        return MISSING
    return f"{p50:,.0f} / {f'{p99:,.0f}' if _finite(p99) else MISSING}"


def quality_text(cell: Mapping[str, Any]) -> str:
    """Accuracy and JSON-valid rate as the tables show them."""
    parts = []
    if cell.get("quality_accuracy") is not None:
        parts.append(f"acc {cell['quality_accuracy']:.0%}")
    if cell.get("quality_valid_rate") is not None:
        parts.append(f"valid {cell['quality_valid_rate']:.0%}")
    return ", ".join(parts) or MISSING


def _cost(cell: Mapping[str, Any]) -> str:
    value, currency = cell.get(COST_KEY), cell.get("cost_currency")
    return _num(value) if value is None or not currency else f"{_num(value)} {currency}"


def cells_table(cells: Sequence[Mapping[str, Any]]) -> str:
    """One row per cell; the cost column only when some cell knows its cost."""
    with_cost = any(cell.get(COST_KEY) is not None for cell in cells)
    headers = ["Model", "Mode", "req/s", "out tok/s", "TTFT p50/p99 ms", "TPOT p50/p99 ms", "Load s", "Projected h"]
    headers += ["Projected cost"] if with_cost else []
    headers += ["Quality", "Score", "Bound by"]
    rows = []
    for cell in cells:
        row = [
            cell.get("model", MISSING),
            mode_text(cell),
            plus_minus(cell, "requests_per_s") or _num(cell.get("requests_per_s")),
            _num(cell.get("output_tokens_per_s"), 1),
            latency_pair(cell, "ttft"),
            latency_pair(cell, "tpot"),
            _num(cell.get("load_s"), 1),
            _num(cell.get("projected_hours"), 1),
        ]
        row += [_cost(cell)] if with_cost else []
        row += [quality_text(cell), _num(cell.get("score"), 3), bound_text(cell)]
        rows.append(row)
    return tabulate(rows, headers, tablefmt="simple", disable_numparse=True)


BOUND_SHARE = {"gpu": "gpu_util_mean_pct", **FIGURE}


def bound_text(cell: Mapping[str, Any]) -> str:
    """What limited the cell, with the share that says so: 'gpu 97%', 'api-server 99%' (of one core)."""
    bound = cell.get("bound_by")
    if not isinstance(bound, str):
        return MISSING
    share = cell.get(BOUND_SHARE.get(bound, ""))
    return f"{bound} {share:.0f}%" if _finite(share) else bound


def settings_lines(cells: Sequence[Mapping[str, Any]]) -> list[str]:
    """Where the engines' effective settings differ between the cells, one line each."""
    lines = []
    for key in differing(list(cells)):
        values = ", ".join(
            f"{cell.get('cell', MISSING)}={cell['engine_settings'].get(key)}"
            for cell in cells
            if isinstance(cell.get("engine_settings"), Mapping)
        )
        lines.append(f"engine setting {key} differs: {values}")
    return lines


def load_point(cell: Mapping[str, Any]) -> str | None:
    """A sweep cell's load point label ('c16'), or None when its saved `load` holds none."""
    load = cell.get("load")
    point = load.get("point") if isinstance(load, Mapping) else None
    return point if isinstance(point, str) and point else None


def mode_text(cell: Mapping[str, Any]) -> str:
    """The mode, with the load point of a sweep's cell ('server c16')."""
    mode = str(cell.get("mode", MISSING))
    point = load_point(cell)
    return f"{mode} {point}" if cell.get("sweep") and point else mode


def gate_lines(baseline: str | None, checks: Sequence[Check] | None) -> list[str]:
    """One line for the gates: not run, no baseline, or how many checks regressed (and which)."""
    if checks is None:
        return []
    if baseline is None:
        return ["gates: no baseline run for this machine; nothing was compared"]
    failed = regressions(checks) + missing_data(checks)
    if not failed:
        return [f"gates: passed, {len(checks)} check(s) against {baseline}"]
    names = ", ".join(
        f"{c.cell} {c.metric} " + (f"{c.change_pct:+.1f}%" if c.change_pct is not None else c.verdict) for c in failed
    )
    return [f"gates: FAILED, {gate_summary(checks)} of {len(checks)} check(s) against {baseline}: {names}"]


def summary_block(
    cells: Sequence[Mapping[str, Any]],
    gates: Sequence[str] = (),
    saved_run: Path | str | None = None,
    report: Path | str | None = None,
) -> str:
    """The whole block, or '' when no cell ran (nothing to summarize). Cells that could not run (a `status`
    other than ok: does not fit, skipped, failed) are listed under the table."""
    ran = [cell for cell in cells if cell.get("status", "ok") == "ok"]
    if not ran:
        return ""
    lines = [cells_table(ran), ""]
    lines += settings_lines(ran)
    lines += [f"not run: {cell.get('cell', MISSING)}: {cell['status']}" for cell in cells if cell not in ran]
    lines += gates
    if saved_run is not None:
        lines.append(f"run saved in {saved_run}")
    if report is not None:
        lines.append(f"report regenerated: {report}")
    return "\n".join(lines).rstrip("\n")
