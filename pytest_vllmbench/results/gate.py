"""Regression gates: METRIC:CHANGE rules checked cell by cell against a baseline run.

One implementation for the pytest gate and `vllmbench gate`. A gate fails on a regression and on
missing data: a baseline cell that is absent or not ok in the current run, a figure that is missing,
NaN or infinite in the current run, or a cell whose requests all failed. Each gets its own line.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pytest_vllmbench.common.numbers import is_finite_number
from pytest_vllmbench.config.gate_rules import Rule, higher_is_better
from pytest_vllmbench.measure.rounds import central
from pytest_vllmbench.results.labels import fmt
from pytest_vllmbench.results.saved_run import is_ok

# exit codes of `vllmbench gate`; the pytest gate exits 1 for both failures and 4 for usage errors
EXIT_OK, EXIT_REGRESSION, EXIT_USAGE, EXIT_MISSING_DATA = 0, 1, 2, 3
CellT = TypeVar("CellT", bound=Mapping[str, Any])


OK, REGRESSION, MISSING_DATA, NOTE = "ok", "regression", "missing data", "note"
# --start-ahead in one run only: beside an idle engine the offline cell measured ~7 % fewer req/s on 2 CPU cores
START_AHEAD_NOTE = "ran beside a --start-ahead engine in one run only: not like for like"


@dataclass(frozen=True)
class Check:
    cell: str
    metric: str
    baseline: float | None
    current: float | None
    change_pct: float | None
    tolerance_pct: float | None
    verdict: str  # what the table shows
    kind: str = OK  # ok | regression | missing data | note (shown, never fails)


def figure(cell: Mapping[str, Any], metric: str) -> float | None:
    """The metric as a finite number, else None (absent, null, NaN, inf or not a number)."""
    value = cell.get(metric)
    return float(value) if is_finite_number(value) else None


def _typical(cell: Mapping[str, Any], metric: str, saved: float) -> float:
    """The rounds' mean of the metric where the cell ran rounds (a run's own figure is its last round's; a broken mean
    is missing data before this), else the saved figure."""
    mean = central(cell, metric)
    return saved if mean is None else mean


def start_ahead_differs(cell: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """One of the two ran beside a --start-ahead engine and the other did not."""
    return bool(cell.get("load_overlapped")) != bool(other.get("load_overlapped"))


def _change_pct(baseline: float, current: float) -> float:
    if baseline == 0:
        return 0.0 if current == 0 else math.copysign(math.inf, current)
    return (current - baseline) / abs(baseline) * 100.0


def _all_failed(cell: Mapping[str, Any]) -> bool:
    requests, failed = figure(cell, "n_requests"), figure(cell, "n_failed")
    return requests is not None and requests > 0 and failed is not None and failed >= requests


def check(
    current: Mapping[str, Mapping[str, Any]], baseline: Mapping[str, Mapping[str, Any]], rules: Sequence[Rule]
) -> list[Check]:
    """Cells are matched by key (by_cell); entries with a `status` other than 'ok' are cells that did not run."""
    checks: list[Check] = []
    ids_now = {str(cell.get("cell", key)) for key, cell in current.items()}
    for cell_id in sorted(set(current) | {c for c, cell in baseline.items() if is_ok(cell)}):
        now, before = current.get(cell_id), baseline.get(cell_id)
        if now is None:
            elsewhere = before is not None and str(before.get("cell", cell_id)) in ids_now
            verdict = "FAILED: in the baseline, not in this run" + (
                " (this run has it at another memory budget)" if elsewhere else ""
            )
            checks.append(Check(cell_id, "-", None, None, None, None, verdict, MISSING_DATA))
            continue
        if not is_ok(now):
            kind = MISSING_DATA if before is not None and is_ok(before) else NOTE
            checks.append(
                Check(
                    cell_id,
                    "-",
                    None,
                    None,
                    None,
                    None,
                    f"FAILED: {now['status']}"[:120] if kind == MISSING_DATA else f"not run: {now['status']}"[:120],
                    kind,
                )
            )
            continue
        if _all_failed(now):
            checks.append(
                Check(
                    cell_id,
                    "n_failed",
                    None,
                    figure(now, "n_failed"),
                    None,
                    None,
                    "FAILED: every request failed",
                    MISSING_DATA,
                )
            )
        if before is not None and start_ahead_differs(now, before):
            checks.append(Check(cell_id, "load_overlapped", None, None, None, None, START_AHEAD_NOTE, NOTE))
        for rule in rules:
            checks.append(_check_rule(cell_id, now, before, rule))
    return checks


def _check_rule(cell_id: str, now: Mapping[str, Any], before: Mapping[str, Any] | None, rule: Rule) -> Check:
    current, base = figure(now, rule.metric), None if before is None else figure(before, rule.metric)
    if current is None:
        shown = now.get(rule.metric)
        why = "absent" if shown is None else repr(shown)
        return Check(
            cell_id, rule.metric, base, None, None, rule.tolerance_pct, f"FAILED: no figure ({why})", MISSING_DATA
        )
    if before is None or not is_ok(before):
        return Check(cell_id, rule.metric, None, current, None, rule.tolerance_pct, "new cell (no baseline)", NOTE)
    if base is None:
        return Check(cell_id, rule.metric, None, current, None, rule.tolerance_pct, "no baseline figure", NOTE)
    for side, cell in (("current", now), ("baseline", before)):
        if _broken_interval(cell, rule.metric, rule.noise_aware):  # both rules read the rounds where there are any
            return Check(
                cell_id,
                rule.metric,
                None,
                None,
                None,
                rule.tolerance_pct,
                f"FAILED: {side} round_stats mean or interval is not a finite number",
                MISSING_DATA,
            )
    if rule.noise_aware:
        return _noise_check(cell_id, now, before, rule)
    base, current = _typical(before, rule.metric, base), _typical(now, rule.metric, current)
    change = _change_pct(base, current)
    worse_by = -change if higher_is_better(rule.metric) else change
    if worse_by > rule.tolerance_pct:
        return Check(cell_id, rule.metric, base, current, change, rule.tolerance_pct, "REGRESSION", REGRESSION)
    return Check(cell_id, rule.metric, base, current, change, rule.tolerance_pct, "ok", OK)


def _noise_check(cell_id: str, now: Mapping[str, Any], before: Mapping[str, Any], rule: Rule) -> Check:
    """The noise-aware rule: compare the means of the rounds, and call it a regression only when the mean got worse
    by more than the tolerance AND the two 95 % confidence intervals do not overlap (the current one lies wholly on
    the worse side). Without intervals on both sides (--rounds 1) the plain rule applies, and the verdict says so."""
    from pytest_vllmbench.measure.rounds import stat

    now_stat, base_stat = stat(now, rule.metric), stat(before, rule.metric)
    if now_stat is None or base_stat is None:
        plain = _check_rule(cell_id, now, before, Rule(rule.metric, rule.tolerance_pct))
        return Check(
            plain.cell,
            plain.metric,
            plain.baseline,
            plain.current,
            plain.change_pct,
            plain.tolerance_pct,
            f"{plain.verdict} (no CI on both sides: plain rule)",
            plain.kind,
        )
    base_mean, now_mean = float(base_stat["mean"]), float(now_stat["mean"])
    change = _change_pct(base_mean, now_mean)
    better_up = higher_is_better(rule.metric)
    worse_by = -change if better_up else change
    apart = (
        (now_stat["ci95_high"] < base_stat["ci95_low"])
        if better_up
        else (now_stat["ci95_low"] > base_stat["ci95_high"])
    )
    if worse_by > rule.tolerance_pct and apart:
        return Check(
            cell_id,
            rule.metric,
            base_mean,
            now_mean,
            change,
            rule.tolerance_pct,
            "REGRESSION (outside the noise)",
            REGRESSION,
        )
    verdict = "ok (within the noise: CIs overlap)" if worse_by > rule.tolerance_pct else "ok"
    return Check(cell_id, rule.metric, base_mean, now_mean, change, rule.tolerance_pct, verdict, OK)


def _broken_interval(cell: Mapping[str, Any], metric: str, with_interval: bool = True) -> bool:
    """Rounds statistics saved for the metric whose mean, or (`with_interval`) whose interval over 2+ rounds, is not
    a finite number."""
    saved = cell.get("round_stats")
    found = saved.get(metric) if isinstance(saved, Mapping) else None
    if not isinstance(found, Mapping):
        return False
    keys = ("mean", "ci95_low", "ci95_high") if with_interval and (figure(found, "n") or 0) >= 2 else ("mean",)
    return any(figure(found, key) is None for key in keys)


def table(checks: Sequence[Check]) -> str:
    from tabulate import tabulate

    rows = [
        [
            c.cell,
            c.metric,
            fmt(c.baseline, 3),
            fmt(c.current, 3),
            "-" if c.change_pct is None else f"{c.change_pct:+.1f}%",
            "-" if c.tolerance_pct is None else f"{c.tolerance_pct:g}%",
            c.verdict,
        ]
        for c in checks
    ]
    return tabulate(
        rows,
        ["Cell", "Metric", "Baseline", "Current", "Change", "Allowed worse", "Verdict"],
        tablefmt="simple",
        disable_numparse=True,
    )


def regressions(checks: Sequence[Check]) -> list[Check]:
    return [c for c in checks if c.kind == REGRESSION]


def missing_data(checks: Sequence[Check]) -> list[Check]:
    return [c for c in checks if c.kind == MISSING_DATA]


def summary(checks: Sequence[Check]) -> str:
    counts = [(len(regressions(checks)), "regression(s)"), (len(missing_data(checks)), "cell(s) or figure(s) missing")]
    failed = [f"{n} {what}" for n, what in counts if n]
    return "; ".join(failed) if failed else "no regression"


def exit_code(checks: Sequence[Check]) -> int:
    if regressions(checks):
        return EXIT_REGRESSION
    return EXIT_MISSING_DATA if missing_data(checks) else EXIT_OK


def cell_key(cell: Mapping[str, Any]) -> str:
    """What matches a cell across two runs: its id, and its memory budget where it had one."""
    budget = cell.get("gpu_memory_budget_gib")
    return str(cell["cell"]) if budget is None else f"{cell['cell']} ({budget:g} GiB budget)"


def by_cell(cells: Iterable[CellT]) -> dict[str, CellT]:
    """Cells by `cell_key`; a measured cell wins over an unrun entry of the same key. A key measured more than once
    in one run (two tests of one cell) keeps every measurement, the later ones numbered in run order (`id #2`):
    none is hidden behind another, and each is matched with the same one of the other run."""
    keyed: dict[str, CellT] = {}
    measured: dict[str, int] = {}
    for cell in cells:
        key = cell_key(cell)
        if not is_ok(cell):
            keyed.setdefault(key, cell)
            continue
        measured[key] = times = measured.get(key, 0) + 1
        keyed[key if times == 1 else f"{key} #{times}"] = cell
    return keyed
