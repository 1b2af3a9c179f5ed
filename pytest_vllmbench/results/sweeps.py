"""What a load sweep's saved points say: which met the SLOs, and the knee (the fastest of those)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pytest_vllmbench.measure.rounds import central
from pytest_vllmbench.results.labels import MISSING, load_point
from pytest_vllmbench.results.saved_run import is_ok

# A point "met the SLOs" when at least this share of its requests met every SLO (goodput / throughput):
# the p99 of each SLO'd latency is within its limit.
SLO_ATTAINMENT = 0.99
Point = TypeVar("Point", bound=Mapping[str, Any])  # a saved cell, or a session's figures


def slo_attainment(cell: Mapping[str, Any]) -> float | None:
    """Share of the point's requests that met every SLO, from its goodput and throughput (means over rounds)."""
    good, rate = central(cell, "goodput_requests_per_s"), central(cell, "requests_per_s")
    if good is None or not rate:
        return None
    return float(good) / float(rate)


def met_slo(cell: Mapping[str, Any]) -> bool:
    attainment = slo_attainment(cell)
    return attainment is not None and attainment >= SLO_ATTAINMENT and not cell.get("n_failed")


def knee(points: Iterable[Point]) -> Point | None:
    """Of a sweep's points that met the SLOs, the one with the highest throughput (the rounds' mean when there
    were several); None when none did."""
    met = [cell for cell in points if met_slo(cell)]
    return max(met, key=lambda cell: central(cell, "requests_per_s") or 0.0, default=None)


def sweeps(cells: Iterable[Point]) -> dict[str, list[Point]]:
    """Measured sweep cells grouped by their sweep (model-mode), each group lightest point first."""
    groups: dict[str, list[Point]] = {}
    for cell in cells:
        if cell.get("sweep") and is_ok(cell):
            groups.setdefault(str(cell["sweep"]), []).append(cell)
    for group in groups.values():
        group.sort(key=lambda cell: load_order(cell.get("load") or {}))
    return groups


def load_order(load: Mapping[str, Any]) -> tuple[float, float]:
    """Lightest first: low concurrency before high, a rate limit before none."""
    concurrency, rate = load.get("concurrency"), load.get("request_rate")
    return (math.inf if concurrency is None else float(concurrency), math.inf if rate is None else float(rate))


def knee_lines(cells: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line per sweep that ran with --slo: its knee, or that no point met the SLOs."""
    lines = []
    for name, points in sweeps(cells).items():
        slo = points[0].get("slo_ms")
        if not slo:
            continue
        spec = ",".join(f"{key}:{value:g}" for key, value in slo.items())
        best = knee(points)
        if best is None:
            lines.append(f"sweep {name}: no load point met the SLOs ({spec}) for {SLO_ATTAINMENT:.0%} of its requests")
        else:
            lines.append(
                f"sweep {name}: knee at {load_point(best) or MISSING} ({central(best, 'requests_per_s') or 0:.2f} "
                f"req/s, {central(best, 'output_tokens_per_s') or 0:.1f} out tok/s) under {spec}"
            )
    return lines
