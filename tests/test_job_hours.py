"""Each mode's projected job hours beside the offline-vs-server verdict, round by round."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_vllmbench.measure.metrics import projected_hours
from pytest_vllmbench.measure.rounds import interval
from pytest_vllmbench.results.job_hours import job_note, on_round_means
from pytest_vllmbench.results.saved_run import SavedCell

JOB = {"project_to": 170000, "n_requests": 3000, "n_failed": 0, "load_s": 100.0}


def _cell(mode, rounds, **figures):
    """A cell whose top-level rate is not its rounds' mean, so a note built from it would show."""
    return JOB | {"mode": mode, "requests_per_s": 1.0, "rounds": rounds} | figures


def _rounds(*pairs):
    return [{"requests_per_s": rate, "steady_requests_per_s": steady} for rate, steady in pairs]


def test_each_round_is_projected_and_the_modes_compared_by_their_intervals():
    offline = _cell("offline", _rounds((70.0, 88.0), (70.5, 89.0), (70.2, 88.5)))
    server = _cell("server", _rounds((57.0, 80.0), (58.0, 92.0), (58.5, 88.0)))
    hours = [
        projected_hours(rate, 170000, 100.0, steady, 3000)
        for rate, steady in ((70.0, 88.0), (70.5, 89.0), (70.2, 88.5))
    ]
    expected = interval(hours)
    note = job_note(offline, server)
    assert note.startswith(
        f"; 170,000 requests: offline {expected['mean']:.2f} ± {expected['ci95_half']:.2f} h, server "
    )
    assert note.endswith(", no difference shown")


def test_a_gap_in_the_steady_rate_is_called_for_the_job():
    offline = _cell("offline", _rounds((100.0, 128.0), (102.0, 130.0), (104.0, 127.0)))
    server = _cell("server", _rounds((50.0, 76.0), (49.0, 75.0), (51.0, 78.0)))
    assert job_note(offline, server).endswith(", offline sooner")
    assert job_note(server | {"mode": "offline"}, offline | {"mode": "server"}).endswith(", server sooner")


def test_without_rounds_the_cells_own_figures_are_projected_with_no_verdict():
    offline = JOB | {"requests_per_s": 100.0, "steady_requests_per_s": 120.0}
    server = JOB | {"requests_per_s": 50.0, "steady_requests_per_s": 60.0}
    hours = projected_hours(100.0, 170000, 100.0, 120.0, 3000), projected_hours(50.0, 170000, 100.0, 60.0, 3000)
    assert job_note(offline, server) == f"; 170,000 requests: offline {hours[0]:.2f} h, server {hours[1]:.2f} h"


def test_both_modes_are_projected_by_one_formula():
    # the server saved no steady rate: both are then projected at their whole-run rates, none with its steady one
    offline = JOB | {"requests_per_s": 70.0, "steady_requests_per_s": 88.0}
    server = JOB | {"requests_per_s": 58.0}
    hours = projected_hours(70.0, 170000, 100.0), projected_hours(58.0, 170000, 100.0)
    assert job_note(offline, server) == f"; 170,000 requests: offline {hours[0]:.2f} h, server {hours[1]:.2f} h"
    zero_steady = _cell("server", _rounds((58.0, 0.0), (58.0, 86.0)))
    mixed = job_note(_cell("offline", _rounds((70.0, 88.0), (70.0, 88.0))), zero_steady)
    assert (
        mixed == f"; 170,000 requests: offline {hours[0]:.2f} ± 0.00 h, server {hours[1]:.2f} ± 0.00 h, offline sooner"
    )
    unknown_count = offline | {"n_requests": None}
    both = job_note(unknown_count, server | {"steady_requests_per_s": 86.0})
    assert both == f"; 170,000 requests: offline {hours[0]:.2f} h, server {projected_hours(58.0, 170000, 100.0):.2f} h"


@pytest.mark.parametrize(
    "change",
    [
        {"project_to": 1000},
        {"project_to": None},
        {"requests_per_s": None, "rounds": None},
        {"requests_per_s": 0.0, "rounds": None},
        {"rounds": _rounds((50.0, 60.0), (float("nan"), 60.0))},
    ],
)
def test_no_note_where_the_job_or_a_rate_is_missing(change):
    offline = _cell("offline", _rounds((70.0, 88.0), (70.5, 89.0)))
    server = _cell("server", _rounds((57.0, 80.0), (58.0, 92.0))) | change
    assert job_note(offline, server) == ""


FLIPPED = {", offline sooner": ", server sooner", ", server sooner": ", offline sooner"}


@given(
    st.lists(st.tuples(st.floats(1, 500), st.floats(1, 500)), min_size=2, max_size=6),
    st.lists(st.tuples(st.floats(1, 500), st.floats(1, 500)), min_size=2, max_size=6),
)
def test_swapping_the_two_cells_swaps_their_hours_and_the_verdict(first, second):
    a, b = _cell("offline", _rounds(*first)), _cell("server", _rounds(*second))
    found = re.fullmatch(r"; 170,000 requests: offline (.+ h), server (.+ h)(, .+)", job_note(a, b))
    back = re.fullmatch(r"; 170,000 requests: offline (.+ h), server (.+ h)(, .+)", job_note(b, a))
    assert found and back
    assert (back[1], back[2]) == (found[2], found[1])
    assert back[3] == FLIPPED.get(found[3], found[3])


def test_a_cell_with_rounds_is_scored_at_their_mean_rate_and_mean_projected_hours():
    rounds = _rounds((100.0, 120.0), (60.0, 80.0))  # a run saves its last round's figures: 60 req/s
    saved = {"requests_per_s": 60.0, "projected_hours": 2.0, "projected_cost": 10.0, "cell": "m-offline", "model": "m"}
    cell = SavedCell.of(_cell("offline", rounds, round_stats={"requests_per_s": interval([100.0, 60.0])}) | saved)
    scored = on_round_means(cell)
    hours = [projected_hours(rate, 170000, 100.0, steady, 3000) for rate, steady in ((100.0, 120.0), (60.0, 80.0))]
    assert scored.requests_per_s == 80.0
    assert scored.projected_hours == pytest.approx(sum(hours) / 2, abs=1e-3)
    assert scored.projected_cost == pytest.approx(10.0 * scored.projected_hours / 2.0, abs=0.01)  # cost is per hour
    one_round = SavedCell.of(JOB | saved | {"mode": "offline"})
    assert on_round_means(one_round) is one_round
