import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.config.score_weights import DEFAULT_WEIGHTS, check_weights
from pytest_vllmbench.results.scoring import score_cells

rates = st.floats(min_value=0.01, max_value=1e4)
qualities = st.floats(min_value=0, max_value=1)
modes = st.sampled_from(["offline", "server"])


def cell(rate, quality=None, mode="offline", load_s=10.0, n=170_000):
    return {
        "requests_per_s": rate,
        "projected_hours": (load_s + n / rate) / 3600,
        "quality_accuracy": quality,
        "mode": mode,
    }


def test_the_seed_weights_are_the_default():
    assert DEFAULT_WEIGHTS == {"throughput": 0.4, "total_time": 0.3, "quality": 0.2, "flexibility": 0.1}


def test_best_in_everything_scores_one_and_components_are_explained():
    best, other = score_cells([cell(10.0, 1.0, "server"), cell(5.0, 0.45, "offline")])
    assert best["score"] == 1.0
    assert other["components"]["throughput"] == 0.5 and other["components"]["quality"] == 0.45
    assert other["components"]["flexibility"] == 0.0
    assert sum(best["weights"].values()) == pytest.approx(1.0)


@given(rates, rates, qualities, modes)
def test_score_is_monotone_in_throughput(rate, extra, quality, mode):
    others = [cell(50.0, 0.5)]
    low = score_cells([cell(rate, quality, mode)] + others)[0]["score"]
    high = score_cells([cell(rate + extra, quality, mode)] + others)[0]["score"]
    assert high >= low


@given(rates, qualities, qualities)
def test_score_is_monotone_in_quality(rate, q1, q2):
    others = [cell(50.0, 0.5)]
    lo, hi = sorted((q1, q2))
    assert score_cells([cell(rate, hi)] + others)[0]["score"] >= score_cells([cell(rate, lo)] + others)[0]["score"]


@given(rates, qualities)
def test_flexibility_breaks_ties_between_modes(rate, quality):
    offline, server = score_cells([cell(rate, quality, "offline"), cell(rate, quality, "server")])
    assert server["score"] > offline["score"]


@given(rates, qualities, modes)
def test_identical_cells_tie(rate, quality, mode):
    a, b = score_cells([cell(rate, quality, mode), cell(rate, quality, mode)])
    assert a["score"] == b["score"]


@given(
    st.lists(st.tuples(rates, qualities, modes), min_size=1, max_size=6),
    st.dictionaries(st.sampled_from(list(DEFAULT_WEIGHTS)), st.floats(min_value=0, max_value=10), min_size=4),
)
def test_scores_stay_within_the_weights(cells, weights):
    if sum(weights.values()) <= 0:
        return
    for scored in score_cells([cell(*c) for c in cells], weights):
        assert -1e-9 <= scored["score"] <= 1.0 + 1e-9
        assert sum(scored["weights"].values()) == pytest.approx(1.0, abs=1e-3)


def test_without_any_quality_its_weight_is_shared_out():
    scored = score_cells([cell(10.0), cell(5.0)])
    assert "quality" not in scored[0]["weights"] and scored[0]["components"]["quality"] is None
    assert scored[0]["score"] == pytest.approx((0.4 + 0.3) / 0.8)


@pytest.mark.parametrize(
    "weights",
    [
        {"speed": 1},
        {"throughput": -1},
        dict.fromkeys(DEFAULT_WEIGHTS, 0),
        {"throughput": math.nan},  # the report said "score nan"
        {"throughput": math.inf},
        {"throughput": 1e308, "total_time": 1e308},  # each finite, their sum not
        {"throughput": 10**400},  # a TOML integer: float() of it overflowed, a traceback
    ],
)
def test_bad_weights_are_usage_errors(weights):
    with pytest.raises(UsageError):
        check_weights(weights)
