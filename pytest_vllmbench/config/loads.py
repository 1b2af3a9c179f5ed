"""Load points of a sweep (--concurrency 1,16,64 / --request-rate 2,8,inf); what a sweep found is results/sweeps.py."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import product
from typing import Any, TypeVar

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.measure.rounds import central

SWEEP_MODES = ("server", "endpoint")  # offline takes the whole batch at once: it has no load to vary
# A point "met the SLOs" when at least this share of its requests met every SLO (goodput / throughput):
# the p99 of each SLO'd latency is within its limit.
SLO_ATTAINMENT = 0.99


@dataclass(frozen=True, order=True)
class LoadPoint:
    """How requests reach the server: at most `concurrency` in flight, Poisson arrivals at `request_rate`/s
    (None for either: no limit, all at once)."""

    concurrency: int | None = None
    request_rate: float | None = None

    @property
    def label(self) -> str:
        """Part of the cell id: c16, r8, c16-r8, or rinf (no limit at all)."""
        parts = [f"c{self.concurrency}"] if self.concurrency is not None else []
        if self.request_rate is not None:
            parts.append(f"r{self.request_rate:g}")
        return "-".join(parts) or "rinf"

    def describe(self) -> dict[str, Any]:
        return {"concurrency": self.concurrency, "request_rate": self.request_rate, "point": self.label}


Config = TypeVar("Config")  # the client's ClientConfig (a dataclass)


def with_load(config: Config, load: LoadPoint | None, on_sent: Callable[[str, float], None] | None) -> Config:
    """The client settings for one cell: its load point's concurrency and rate, and the trace hook."""
    if load is not None:
        config = replace(config, concurrency=load.concurrency, request_rate=load.request_rate)  # type: ignore[type-var]
    return replace(config, on_sent=on_sent) if on_sent is not None else config  # type: ignore[type-var]


def parse_concurrencies(value: Any) -> tuple[int | None, ...]:
    """'1,16,64' -> (1, 16, 64); empty -> (None,), all requests at once."""
    items = _items(value)
    if not items:
        return (None,)
    values = []
    for item in items:
        try:
            number = int(item)
        except ValueError:
            raise UsageError(f"--concurrency expects integers >= 1 separated by commas, got {item!r}") from None
        if number < 1:
            raise UsageError(f"--concurrency must be >= 1, got {item!r}")
        values.append(number)
    return _unique(values, "--concurrency")


def parse_request_rates(value: Any) -> tuple[float | None, ...]:
    """'2,8,inf' -> (2.0, 8.0, None); `inf` is no rate limit (all at once), as in `vllm bench serve`."""
    items = _items(value)
    if not items:
        return (None,)
    values: list[float | None] = []
    for item in items:
        try:
            number = float(item)
        except ValueError:
            raise UsageError(
                f"--request-rate expects a finite number, or inf, separated by commas, got {item!r}"
            ) from None
        if number == math.inf and item.strip().lower() in ("inf", "infinity", "+inf"):
            values.append(None)
            continue
        if not math.isfinite(number):
            raise UsageError(f"--request-rate expects a finite number (or inf for no limit), got {item!r}")
        if number <= 0:
            raise UsageError(f"--request-rate must be a number above 0, got {item!r}")
        values.append(number)
    return _unique(values, "--request-rate")


def _items(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [str(value)]
    texts = value if isinstance(value, (list, tuple)) else [value]
    return [item.strip() for text in texts for item in str(text).split(",") if item.strip()]


def _unique(values: Sequence[Any], what: str) -> tuple[Any, ...]:
    if len(set(values)) != len(values):
        raise UsageError(f"{what} lists a value twice: {', '.join('inf' if v is None else f'{v:g}' for v in values)}")
    return tuple(values)


def load_points(concurrencies: Sequence[int | None], rates: Sequence[float | None]) -> tuple[LoadPoint, ...]:
    """Every combination, lightest first (rate-limited before unlimited, low concurrency before high)."""

    def weight(point: LoadPoint) -> tuple[float, float]:
        return (
            math.inf if point.concurrency is None else point.concurrency,
            math.inf if point.request_rate is None else point.request_rate,
        )

    return tuple(sorted((LoadPoint(c, r) for c, r in product(concurrencies, rates)), key=weight))


# The analysis below moved to results/sweeps.py (issue 25). It stays here only because pytest_plugin/plugin.py still
# calls loads.knee_lines, and config/ may not import results/: delete from here to the end once it calls
# results.sweeps.knee_lines.


def slo_attainment(cell: Mapping[str, Any]) -> float | None:
    """Share of the point's requests that met every SLO, from its goodput and throughput (means over rounds)."""
    good, rate = central(cell, "goodput_requests_per_s"), central(cell, "requests_per_s")
    if good is None or not rate:
        return None
    return float(good) / float(rate)


def met_slo(cell: Mapping[str, Any]) -> bool:
    attainment = slo_attainment(cell)
    return attainment is not None and attainment >= SLO_ATTAINMENT and not cell.get("n_failed")


def knee(points: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """Of a sweep's points that met the SLOs, the one with the highest throughput (the rounds' mean when there
    were several); None when none did."""
    met = [cell for cell in points if met_slo(cell)]
    return max(met, key=lambda cell: central(cell, "requests_per_s") or 0.0, default=None)


def sweeps(cells: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Saved sweep cells grouped by their sweep (model-mode), each group lightest point first."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for cell in cells:
        if cell.get("sweep") and cell.get("status", "ok") == "ok":
            groups.setdefault(str(cell["sweep"]), []).append(cell)
    for group in groups.values():
        group.sort(key=lambda cell: load_points_key(cell.get("load") or {}))
    return groups


def load_points_key(load: Mapping[str, Any]) -> tuple[float, float]:
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
                f"sweep {name}: knee at {_point(best)} ({central(best, 'requests_per_s') or 0:.2f} "
                f"req/s, {central(best, 'output_tokens_per_s') or 0:.1f} out tok/s) under {spec}"
            )
    return lines


def _point(cell: Mapping[str, Any]) -> str:
    load = cell.get("load")
    point = load.get("point") if isinstance(load, Mapping) else None
    return point if isinstance(point, str) else "-"
