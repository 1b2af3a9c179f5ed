"""Repeated rounds: Student-t 95 % intervals, and the noise-aware gate rule."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_vllmbench.measure.rounds import interval, plus_minus, round_statistics, rounds_info
from pytest_vllmbench.results import gate

T_975_2DF = 4.302652729911275  # Student t, 97.5th percentile, 2 degrees of freedom (printed tables: 4.303)


def test_three_rounds_give_the_t_interval():
    found = interval([1.0, 2.0, 3.0])
    assert found["mean"] == 2.0 and found["stddev"] == 1.0 and found["n"] == 3
    assert found["ci95_half"] == pytest.approx(T_975_2DF / math.sqrt(3), abs=1e-4)
    assert (found["ci95_low"], found["ci95_high"]) == pytest.approx((2 - 2.4842, 2 + 2.4842), abs=1e-4)


def test_one_round_has_no_interval_and_saves_nothing_extra():
    assert interval([5.0])["ci95_half"] is None
    assert rounds_info([{"requests_per_s": 5.0}]) == {}


@given(st.lists(st.floats(0.001, 1e6, allow_nan=False), min_size=2, max_size=20))
def test_the_interval_holds_the_mean_and_shrinks_with_agreement(values):
    found = interval(values)
    assert found["ci95_low"] <= found["mean"] <= found["ci95_high"]
    assert found["ci95_half"] >= 0
    assert interval([values[0]] * len(values))["ci95_half"] == 0.0


def test_statistics_skip_rounds_that_measured_nothing_and_plus_minus_shows_the_half_width():
    rounds = [{"requests_per_s": 1.0, "ttft_ms_p50": None}, {"requests_per_s": 3.0, "ttft_ms_p50": None}]
    stats = round_statistics(rounds)
    assert set(stats) == {"requests_per_s"}
    assert plus_minus({"round_stats": stats}, "requests_per_s") == f"2.00 ± {stats['requests_per_s']['ci95_half']:.2f}"
    assert plus_minus({"requests_per_s": 2.0}, "requests_per_s") is None


def cell(values, metric="requests_per_s"):
    stats = round_statistics([{metric: v} for v in values])
    return {"cell": "m-server", metric: values[-1], "round_stats": stats, "n_requests": 8, "n_failed": 0}


NOISY = gate.Rule.parse("requests_per_s:-5%:noise")


def test_noise_rule_passes_a_drop_inside_overlapping_intervals_that_the_plain_rule_fails():
    before, now = cell([10.0, 12.0, 8.0]), cell([9.0, 11.0, 7.5])  # means 10 -> 9.17 (-8 %), wide intervals
    plain = gate.check({"m-server": now}, {"m-server": before}, [gate.Rule.parse("requests_per_s:-5%")])
    noisy = gate.check({"m-server": now}, {"m-server": before}, [NOISY])
    assert [c.kind for c in plain] == [gate.REGRESSION]
    assert [(c.kind, c.verdict) for c in noisy] == [(gate.OK, "ok (within the noise: CIs overlap)")]


def test_noise_rule_fails_a_drop_whose_intervals_are_apart():
    before, now = cell([10.0, 10.1, 9.9]), cell([8.0, 8.1, 7.9])
    [result] = gate.check({"m-server": now}, {"m-server": before}, [NOISY])
    assert (result.kind, result.verdict) == (gate.REGRESSION, "REGRESSION (outside the noise)")
    assert result.change_pct == pytest.approx(-20.0)


def test_noise_rule_on_a_lower_is_better_metric():
    rule = gate.Rule.parse("ttft_ms_p50:+10%:noise")
    before, now = cell([100.0, 101.0, 99.0], "ttft_ms_p50"), cell([150.0, 151.0, 149.0], "ttft_ms_p50")
    assert gate.check({"m-server": now}, {"m-server": before}, [rule])[0].kind == gate.REGRESSION
    assert gate.check({"m-server": before}, {"m-server": now}, [rule])[0].kind == gate.OK


def test_noise_rule_without_rounds_falls_back_to_the_plain_rule_and_says_so():
    before, now = {"cell": "m-server", "requests_per_s": 10.0}, {"cell": "m-server", "requests_per_s": 8.0}
    [result] = gate.check({"m-server": now}, {"m-server": before}, [NOISY])
    assert result.kind == gate.REGRESSION and "no CI on both sides: plain rule" in result.verdict


def test_a_misspelt_noise_suffix_is_a_usage_error():
    with pytest.raises(Exception, match="METRIC:CHANGE% or METRIC:CHANGE%:noise"):
        gate.Rule.parse("requests_per_s:-5%:nois")
