"""Per-request records -> the flat metrics every cell reports (vLLM's definitions)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PERCENTILES = (50, 90, 99)
CDF_POINTS = 101  # percentiles 0..100 of TTFT and E2EL: the latency CDF plots, without any per-request data


@dataclass
class RequestRecord:
    """What one request did. Times are seconds; `text` stays in memory and is never saved."""

    custom_id: str
    input_tokens: int = 0
    output_tokens: int = 0
    e2el_s: float | None = None
    ttft_s: float | None = None
    itl_s: list[float] = field(default_factory=list)
    error: str | None = None
    text: str | None = None
    finish_reason: str | None = None
    done_at: float | None = None  # when it completed, on its engine's monotonic clock: the steady-state rate

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def tpot_s(self) -> float | None:
        if self.e2el_s is None or self.ttft_s is None or self.output_tokens < 2:
            return None
        return (self.e2el_s - self.ttft_s) / (self.output_tokens - 1)


def distribution(name: str, values_s: Sequence[float]) -> dict[str, float | None]:
    """`{name}_ms_mean`, `_p50`, `_p90`, `_p99`; nulls when nothing was measured."""
    keys = [f"{name}_ms_mean"] + [f"{name}_ms_p{p}" for p in PERCENTILES]
    if not values_s:
        return dict.fromkeys(keys)
    values_ms = np.asarray(values_s, dtype=float) * 1000.0
    figures = [float(values_ms.mean())] + [float(v) for v in np.percentile(values_ms, PERCENTILES)]
    return {key: round(value, 3) for key, value in zip(keys, figures, strict=True)}


def cdf(name: str, values_s: Sequence[float]) -> dict[str, list[float] | None]:
    """`{name}_ms_cdf`: the 0th..100th percentiles in ms, or null when nothing was measured."""
    if not values_s:
        return {f"{name}_ms_cdf": None}
    points = np.percentile(np.asarray(values_s, dtype=float) * 1000.0, np.linspace(0, 100, CDF_POINTS))
    return {f"{name}_ms_cdf": [round(float(v), 3) for v in points]}


STEADY_WINDOW = (0.1, 0.9)  # the completions between 10 % and 90 % of a round: no ramp-up, no tail


MIN_STEADY_SHARE = 0.25  # the window must span this share of the round, or there is no steady state to speak of


def steady_rate(records: Sequence[RequestRecord], wall_s: float | None = None) -> float | None:
    """Completions per second between the 10th and the 90th percentile of completion times, or None when fewer
    than 10 requests carry a completion time, or the window is shorter than MIN_STEADY_SHARE of the round's
    `wall_s` (a batch that finishes at once, as a few requests on one engine step do)."""
    done = sorted(r.done_at for r in records if r.ok and r.done_at is not None)
    if len(done) < 10:
        return None
    first = int(STEADY_WINDOW[0] * len(done))
    last = max(int(STEADY_WINDOW[1] * len(done)) - 1, first + 1)
    span = done[last] - done[first]
    if span <= 0 or (wall_s is not None and span < MIN_STEADY_SHARE * wall_s):
        return None
    return (last - first) / span


def projected_hours(
    requests_per_s: float, project_to: int, load_s: float | None, steady: float | None = None, done: int = 0
) -> float | None:
    """Load once, then the whole job. With a steady rate: the job at that rate plus this round's ramp-up and tail
    once (the round's wall time beyond its completions at the steady rate); else at the whole round's rate."""
    if requests_per_s <= 0:
        return None
    if steady is None or steady <= 0 or done <= 0:
        return ((load_s or 0.0) + project_to / requests_per_s) / 3600.0
    ramp_and_tail_s = max(done / requests_per_s - done / steady, 0.0)
    return ((load_s or 0.0) + ramp_and_tail_s + project_to / steady) / 3600.0


def summarize(
    records: Sequence[RequestRecord],
    wall_s: float,
    load_s: float | None,
    project_to: int,
    slo_ms: dict[str, float] | None = None,
) -> dict[str, Any]:
    done = [r for r in records if r.ok]
    input_tokens = sum(r.input_tokens for r in done)
    output_tokens = sum(r.output_tokens for r in done)
    rate = len(done) / wall_s if wall_s > 0 else 0.0
    summary: dict[str, Any] = {
        "n_requests": len(records),
        "n_failed": len(records) - len(done),
        "errors": dict(Counter(r.error for r in records if not r.ok)),
        "load_s": None if load_s is None else round(load_s, 3),
        "wall_s": round(wall_s, 3),
        "requests_per_s": round(rate, 4),
        "output_tokens_per_s": round(output_tokens / wall_s, 3) if wall_s > 0 else 0.0,
        "total_tokens_per_s": round((input_tokens + output_tokens) / wall_s, 3) if wall_s > 0 else 0.0,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
    }
    summary |= distribution("e2el", [r.e2el_s for r in done if r.e2el_s is not None])
    summary |= distribution("ttft", [r.ttft_s for r in done if r.ttft_s is not None])
    summary |= distribution("tpot", [t for r in done if (t := r.tpot_s) is not None])
    summary |= distribution("itl", [gap for r in done for gap in r.itl_s])
    summary |= cdf("ttft", [r.ttft_s for r in done if r.ttft_s is not None])
    summary |= cdf("e2el", [r.e2el_s for r in done if r.e2el_s is not None])
    if slo_ms:
        good = sum(_meets_slo(r, slo_ms) for r in done)
        summary["goodput_requests_per_s"] = round(good / wall_s, 4) if wall_s > 0 else 0.0
    steady = steady_rate(done, wall_s)
    summary["steady_requests_per_s"] = None if steady is None else round(steady, 4)
    hours = projected_hours(rate, project_to, load_s, steady, len(done))
    summary["projected_hours"] = None if hours is None else round(hours, 4)
    summary["project_to"] = project_to
    return summary


def _meets_slo(record: RequestRecord, slo_ms: dict[str, float]) -> bool:
    measured = {"ttft": record.ttft_s, "tpot": record.tpot_s, "e2el": record.e2el_s}
    for name, limit in slo_ms.items():
        value = measured.get(name)
        if value is not None and value * 1000.0 > limit:
            return False
    return True
