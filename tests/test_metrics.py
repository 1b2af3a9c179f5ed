import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_vllmbench.measure.metrics import RequestRecord, distribution, projected_hours, summarize


def test_summary_of_known_records():
    records = [
        RequestRecord("a", input_tokens=10, output_tokens=5, e2el_s=1.0, ttft_s=0.2, itl_s=[0.2, 0.2]),
        RequestRecord("b", input_tokens=20, output_tokens=3, e2el_s=2.0, ttft_s=0.4, itl_s=[0.8]),
        RequestRecord("c", error="timeout"),
    ]
    summary = summarize(records, wall_s=4.0, load_s=10.0, project_to=100)
    assert summary["n_requests"] == 3 and summary["n_failed"] == 1
    assert summary["errors"] == {"timeout": 1}
    assert summary["requests_per_s"] == 0.5
    assert summary["output_tokens_per_s"] == 2.0
    assert summary["total_tokens_per_s"] == 9.5
    assert summary["e2el_ms_mean"] == 1500.0
    assert summary["ttft_ms_p50"] == pytest.approx(300.0)
    # TPOT = (E2EL - TTFT) / (output tokens - 1): 0.8 / 4 and 1.6 / 2
    assert summary["tpot_ms_mean"] == pytest.approx(500.0)
    assert summary["itl_ms_p50"] == pytest.approx(200.0)
    assert summary["projected_hours"] == pytest.approx((10.0 + 100 / 0.5) / 3600, rel=1e-3)


def test_nothing_measured_gives_nulls_not_zeros():
    summary = summarize([RequestRecord("a", error="http_500")], wall_s=1.0, load_s=None, project_to=10)
    assert summary["e2el_ms_p99"] is None and summary["ttft_ms_mean"] is None
    assert summary["projected_hours"] is None and summary["load_s"] is None


def test_tpot_needs_two_tokens():
    assert RequestRecord("a", output_tokens=1, e2el_s=1.0, ttft_s=0.5).tpot_s is None


def test_goodput_counts_requests_within_every_slo():
    records = [
        RequestRecord("fast", output_tokens=3, e2el_s=0.3, ttft_s=0.1),
        RequestRecord("slow", output_tokens=3, e2el_s=3.0, ttft_s=2.0),
    ]
    summary = summarize(records, wall_s=1.0, load_s=None, project_to=10, slo_ms={"ttft": 500, "tpot": 200})
    assert summary["goodput_requests_per_s"] == 1.0


@given(st.lists(st.floats(min_value=0, max_value=1e4, allow_nan=False), min_size=1, max_size=200))
def test_percentiles_are_ordered_and_bounded(values):
    d = distribution("x", values)
    low, high = min(values) * 1000, max(values) * 1000
    assert low - 1e-3 <= d["x_ms_p50"] <= d["x_ms_p90"] + 1e-3 <= d["x_ms_p99"] + 2e-3 <= high + 3e-3
    assert low - 1e-3 <= d["x_ms_mean"] <= high + 1e-3


@given(st.floats(min_value=1e-3, max_value=1e4), st.integers(min_value=1, max_value=10**7))
def test_projection_falls_as_throughput_rises(rate, n):
    assert projected_hours(rate * 2, n, 5.0) < projected_hours(rate, n, 5.0)


@given(st.lists(st.floats(min_value=0.001, max_value=600.0), min_size=1, max_size=300))
def test_saved_cdf_is_101_ordered_percentiles_spanning_the_data(values_s):
    records = [RequestRecord(str(i), output_tokens=2, e2el_s=v, ttft_s=v / 2) for i, v in enumerate(values_s)]
    summary = summarize(records, wall_s=1.0, load_s=None, project_to=10)
    for name, scale in (("e2el", 1.0), ("ttft", 0.5)):
        points = summary[f"{name}_ms_cdf"]
        assert len(points) == 101 and points == sorted(points)
        assert points[0] == pytest.approx(min(values_s) * scale * 1000, abs=1e-3)
        assert points[-1] == pytest.approx(max(values_s) * scale * 1000, abs=1e-3)


def test_no_latency_measured_saves_no_cdf():
    summary = summarize([RequestRecord("a", error="timeout")], wall_s=1.0, load_s=None, project_to=10)
    assert summary["ttft_ms_cdf"] is None and summary["e2el_ms_cdf"] is None


def test_tokens_per_chunk_says_when_a_server_streamed_several_tokens_at_a_time():
    """vLLM's --stream-interval 8: 16 tokens in 2 chunks; the other request one token a chunk. A request without
    gaps (one chunk) and a failed one are left out; a cell with no streamed gaps saves no such figure."""
    records = [
        RequestRecord("a", output_tokens=16, e2el_s=1.0, ttft_s=0.1, itl_s=[0.8]),
        RequestRecord("b", output_tokens=4, e2el_s=1.0, ttft_s=0.1, itl_s=[0.1, 0.1, 0.1]),
        RequestRecord("c", output_tokens=1, e2el_s=0.2, ttft_s=0.2),
        RequestRecord("d", output_tokens=9, itl_s=[0.1], error="cut_stream"),
    ]
    assert summarize(records, wall_s=2.0, load_s=None, project_to=10)["tokens_per_chunk"] == round(20 / 6, 2)
    offline = [RequestRecord("a", output_tokens=16, e2el_s=1.0, ttft_s=0.1)]
    assert "tokens_per_chunk" not in summarize(offline, wall_s=2.0, load_s=None, project_to=10)
