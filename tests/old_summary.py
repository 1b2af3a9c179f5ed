"""The list-based summary as it was before records were spilled (commit 23f10f5), kept as the reference the
spilled summary must equal: every figure of the same records."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from pytest_vllmbench.measure.metrics import cdf, distribution, projected_hours
from pytest_vllmbench.measure.request_record import RequestRecord

STEADY_WINDOW = (0.1, 0.9)
MIN_STEADY_SHARE = 0.25


def old_steady_rate(records: Sequence[RequestRecord], wall_s: float | None = None) -> float | None:
    done = sorted(r.done_at for r in records if r.ok and r.done_at is not None)
    if len(done) < 10:
        return None
    first = int(STEADY_WINDOW[0] * len(done))
    last = max(int(STEADY_WINDOW[1] * len(done)) - 1, first + 1)
    span = done[last] - done[first]
    if span <= 0 or (wall_s is not None and span < MIN_STEADY_SHARE * wall_s):
        return None
    return (last - first) / span


def old_summarize(
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
    streamed = [r for r in done if r.itl_s]  # tokens per streamed chunk, over the requests with ITL gaps
    if streamed:
        chunks = sum(len(r.itl_s) + 1 for r in streamed)
        summary["tokens_per_chunk"] = round(sum(r.output_tokens for r in streamed) / chunks, 2)
    summary |= cdf("ttft", [r.ttft_s for r in done if r.ttft_s is not None])
    summary |= cdf("e2el", [r.e2el_s for r in done if r.e2el_s is not None])
    if slo_ms:
        good = sum(_meets_slo(r, slo_ms) for r in done)
        summary["goodput_requests_per_s"] = round(good / wall_s, 4) if wall_s > 0 else 0.0
    steady = old_steady_rate(done, wall_s)
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
