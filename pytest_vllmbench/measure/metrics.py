"""Per-request records -> the flat metrics every cell reports (vLLM's definitions)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pytest_vllmbench.measure.record_spill import RecordSpill
from pytest_vllmbench.measure.request_record import RequestRecord

if TYPE_CHECKING:
    import numpy as np

    from pytest_vllmbench.measure.itl_sketch import ItlSketch

# numpy is imported in the functions that use it: a pytest session imports this module whether or not a cell runs

__all__ = ["RequestRecord", "summarize", "summarize_spill"]

PERCENTILES = (50, 90, 99)
CDF_POINTS = 101  # percentiles 0..100 of TTFT and E2EL: the latency CDF plots, without any per-request data


def distribution(name: str, values_s: Sequence[float] | np.ndarray) -> dict[str, float | None]:
    """`{name}_ms_mean`, `_p50`, `_p90`, `_p99`; nulls when nothing was measured."""
    import numpy as np

    keys = [f"{name}_ms_mean"] + [f"{name}_ms_p{p}" for p in PERCENTILES]
    if not len(values_s):
        return dict.fromkeys(keys)
    values_ms = np.asarray(values_s, dtype=float) * 1000.0
    figures = [float(values_ms.mean())] + [float(v) for v in np.percentile(values_ms, PERCENTILES)]
    return {key: round(value, 3) for key, value in zip(keys, figures, strict=True)}


def cdf(name: str, values_s: Sequence[float] | np.ndarray) -> dict[str, list[float] | None]:
    """`{name}_ms_cdf`: the 0th..100th percentiles in ms, or null when nothing was measured."""
    import numpy as np

    if not len(values_s):
        return {f"{name}_ms_cdf": None}
    points = np.percentile(np.asarray(values_s, dtype=float) * 1000.0, np.linspace(0, 100, CDF_POINTS))
    return {f"{name}_ms_cdf": [round(float(v), 3) for v in points]}


STEADY_WINDOW = (0.1, 0.9)  # the completions between 10 % and 90 % of a round: no ramp-up, no tail


MIN_STEADY_SHARE = 0.25  # the window must span this share of the round, or there is no steady state to speak of


def steady_rate(records: Sequence[RequestRecord], wall_s: float | None = None) -> float | None:
    """The steady rate of the successful records that carry a completion time (`steady_rate_of`)."""
    return steady_rate_of([r.done_at for r in records if r.ok and r.done_at is not None], wall_s)


def steady_rate_of(done_at: Sequence[float] | np.ndarray, wall_s: float | None = None) -> float | None:
    """Completions per second between the 10th and the 90th percentile of the successful requests' completion
    times `done_at`, or None when fewer than 10 carry one, or the window is shorter than MIN_STEADY_SHARE of the
    round's `wall_s` (a batch that finishes at once, as a few requests on one engine step do)."""
    import numpy as np

    done = np.sort(np.asarray(done_at, dtype=float))
    if len(done) < 10:
        return None
    first = int(STEADY_WINDOW[0] * len(done))
    last = max(int(STEADY_WINDOW[1] * len(done)) - 1, first + 1)
    span = float(done[last] - done[first])
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
    with RecordSpill(records) as spill:
        return summarize_spill(spill, wall_s, load_s, project_to, slo_ms)


def summarize_spill(
    spill: RecordSpill,
    wall_s: float,
    load_s: float | None,
    project_to: int,
    slo_ms: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The cell's figures from a round's spilled records, one column in memory at a time."""
    ok = spill.column("ok").astype(bool)
    n_done = int(ok.sum())
    input_tokens = int(spill.column("input")[ok].sum())
    output_tokens = int(spill.column("output")[ok].sum())
    rate = n_done / wall_s if wall_s > 0 else 0.0
    summary: dict[str, Any] = {
        "n_requests": spill.count,
        "n_failed": spill.count - n_done,
        "errors": dict(spill.errors),
        "load_s": None if load_s is None else round(load_s, 3),
        "wall_s": round(wall_s, 3),
        "requests_per_s": round(rate, 4),
        "output_tokens_per_s": round(output_tokens / wall_s, 3) if wall_s > 0 else 0.0,
        "total_tokens_per_s": round((input_tokens + output_tokens) / wall_s, 3) if wall_s > 0 else 0.0,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
    }
    for name in ("e2el", "ttft", "tpot"):
        summary |= distribution(name, _measured(spill, name, ok))
    summary |= itl_distribution(spill.itl)
    if spill.chunks:
        summary["tokens_per_chunk"] = round(spill.chunked_tokens / spill.chunks, 2)
    for name in ("ttft", "e2el"):
        summary |= cdf(name, _measured(spill, name, ok))
    if slo_ms:
        good = _meeting_slo(spill, ok, slo_ms)
        summary["goodput_requests_per_s"] = round(good / wall_s, 4) if wall_s > 0 else 0.0
    steady = steady_rate_of(_measured(spill, "done_at", ok), wall_s)
    summary["steady_requests_per_s"] = None if steady is None else round(steady, 4)
    hours = projected_hours(rate, project_to, load_s, steady, n_done)
    summary["projected_hours"] = None if hours is None else round(hours, 4)
    summary["project_to"] = project_to
    return summary


def _measured(spill: RecordSpill, name: str, ok: np.ndarray) -> np.ndarray:
    """The successful requests' values of a column that were measured, in request order."""
    import numpy as np

    values: np.ndarray = spill.column(name)[ok]
    measured: np.ndarray = values[~np.isnan(values)]
    return measured


def itl_distribution(sketch: ItlSketch) -> dict[str, float | None]:
    """Exact while the sketch holds every gap; else the mean is exact and the percentiles within its error."""
    if sketch.exact or not sketch.count:
        return distribution("itl", sketch.values_s() if sketch.exact else [])
    figures = [sketch.total_s / sketch.count * 1000.0] + [v * 1000.0 for v in sketch.percentiles_s(PERCENTILES)]
    keys = ["itl_ms_mean"] + [f"itl_ms_p{p}" for p in PERCENTILES]
    return {key: round(value, 3) for key, value in zip(keys, figures, strict=True)}


def _meeting_slo(spill: RecordSpill, ok: np.ndarray, slo_ms: dict[str, float]) -> int:
    """Successful requests whose every measured figure named in `slo_ms` is within its limit (unmeasured passes)."""
    meets = ok.copy()
    for name, limit in slo_ms.items():
        if name in ("ttft", "tpot", "e2el"):
            meets &= ~(spill.column(name) * 1000.0 > limit)  # NaN compares False: unmeasured passes
    return int(meets.sum())
