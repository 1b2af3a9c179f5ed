"""Spilled records give the figures the in-memory list gave, and read back the same records."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_vllmbench.measure import itl_sketch
from pytest_vllmbench.measure.itl_sketch import ItlSketch
from pytest_vllmbench.measure.metrics import summarize
from pytest_vllmbench.measure.record_spill import RecordSpill, SpilledRecords
from pytest_vllmbench.measure.request_record import RequestRecord
from tests.old_summary import old_summarize

seconds = st.floats(min_value=0.0, max_value=120.0, allow_nan=False)
maybe_seconds = st.none() | seconds


@st.composite
def records(draw: st.DrawFn) -> RequestRecord:
    error = draw(st.none() | st.sampled_from(["timeout", "http_500", "bad_chunk"]))
    return RequestRecord(
        custom_id=draw(st.text(min_size=1, max_size=8)),
        input_tokens=draw(st.integers(0, 10_000)),
        output_tokens=draw(st.integers(0, 5_000)),
        e2el_s=draw(maybe_seconds),
        ttft_s=draw(maybe_seconds),
        itl_s=draw(st.lists(st.floats(0.0, 2.0), max_size=6)),
        error=error,
        text=draw(st.none() | st.text(max_size=20)),
        finish_reason=draw(st.none() | st.sampled_from(["stop", "length"])),
        done_at=draw(st.none() | st.floats(0.0, 1e6)),
    )


@settings(max_examples=150, deadline=None)
@given(
    batch=st.lists(records(), max_size=60),
    wall_s=st.floats(0.0, 1e4),
    load_s=st.none() | st.floats(0.0, 100.0),
    slo=st.none() | st.dictionaries(st.sampled_from(["ttft", "tpot", "e2el"]), st.floats(1.0, 1e5), min_size=1),
)
def test_spilled_summary_equals_the_list_summary(
    batch: list[RequestRecord], wall_s: float, load_s: float | None, slo: dict[str, float] | None
) -> None:
    assert summarize(batch, wall_s, load_s, 170_000, slo) == old_summarize(batch, wall_s, load_s, 170_000, slo)


@settings(max_examples=50, deadline=None)
@given(batch=st.lists(records(), max_size=30))
def test_records_read_back_in_order_without_their_gaps(batch: list[RequestRecord]) -> None:
    with RecordSpill() as spill:
        for record in batch:
            spill.append(record)
        back = list(SpilledRecords(spill))
        again = list(SpilledRecords(spill))  # re-iterable
    expected = [RequestRecord(**{**vars(r), "itl_s": []}) for r in batch]
    assert back == expected == again


def test_spill_flushes_in_pieces_and_keeps_every_row(monkeypatch) -> None:
    monkeypatch.setattr("pytest_vllmbench.measure.record_spill.FLUSH_ROWS", 7)
    batch = [RequestRecord(f"r{i}", i, 2 * i, e2el_s=i / 10, ttft_s=i / 100, done_at=float(i)) for i in range(50)]
    with RecordSpill(batch) as spill:
        assert spill.column("output").tolist() == [2 * i for i in range(50)]
        assert [r.custom_id for r in SpilledRecords(spill)] == [f"r{i}" for i in range(50)]
        assert SpilledRecords(spill)[49].input_tokens == 49
    assert summarize(batch, 5.0, None, 10) == old_summarize(batch, 5.0, None, 10)


@settings(max_examples=30, deadline=None)
@given(
    gaps=st.lists(st.floats(0.0, 5.0), min_size=2, max_size=400),
    scale=st.sampled_from([1e-4, 1e-2, 1.0]),
)
def test_itl_sketch_percentiles_within_the_stated_error(gaps: list[float], scale: float) -> None:
    values = [g * scale for g in gaps]
    old_limit = itl_sketch.EXACT_LIMIT
    itl_sketch.EXACT_LIMIT = 1  # fold from the first gaps on
    try:
        sketch = ItlSketch()
        for start in range(0, len(values), 7):
            sketch.add(values[start : start + 7])
    finally:
        itl_sketch.EXACT_LIMIT = old_limit
    assert not sketch.exact
    points = (0, 10, 50, 90, 99, 100)
    exact = np.percentile(values, points)
    ordered = sorted(values)
    for point, got, want in zip(points, sketch.percentiles_s(points), exact, strict=True):
        upper = ordered[math.ceil(point / 100 * (len(values) - 1))]  # the larger of the two ranks interpolated
        # a value below SMALLEST_S is shown as 0; above it, within the relative error of its bucket
        assert abs(got - want) <= itl_sketch.RELATIVE_ERROR * upper + itl_sketch.SMALLEST_S


def test_itl_stays_exact_below_the_limit() -> None:
    sketch = ItlSketch()
    sketch.add([0.01, 0.02])
    sketch.add([0.03])
    assert sketch.exact and sketch.values_s().tolist() == [0.01, 0.02, 0.03]
