"""Load points of a sweep (--concurrency 1,16,64 / --request-rate 2,8,inf); what a sweep found is results/sweeps.py."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from itertools import product
from typing import Any, TypeVar

from pytest_vllmbench.common.errors import UsageError

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


MIN_REQUEST_RATE = 1 / 86_400


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
        if number < MIN_REQUEST_RATE:  # the waits between sends would be days, or overflow to infinity
            raise UsageError(
                f"--request-rate must be at least {MIN_REQUEST_RATE:.3g} req/s (one request a day), got {item!r}"
            )
        values.append(number)
    rates = _unique(values, "--request-rate")
    labels = [LoadPoint(request_rate=rate).label for rate in rates]
    if len(set(labels)) != len(labels):  # a cell id holds the rate to 6 significant digits: two would be one cell
        raise UsageError(
            f"--request-rate lists rates that name the same cell ({', '.join(labels)}): make them differ in their"
            " first 6 significant digits"
        )
    return rates


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
