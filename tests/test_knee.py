"""The SLO knee of a load sweep (results/sweeps.py), on session figures and on saved cells alike."""

from pytest_vllmbench.results.saved_run import SavedCell
from pytest_vllmbench.results.sweeps import SLO_ATTAINMENT, knee, knee_lines, sweeps


def point(label, rate, good, failed=0, slo=None, **extra):
    return {
        "cell": f"m-server-{label}",
        "sweep": "m-server",
        "load": {"point": label},
        "requests_per_s": rate,
        "goodput_requests_per_s": good,
        "n_failed": failed,
        "slo_ms": {"ttft": 500.0} if slo is None else slo,
        "output_tokens_per_s": rate * 10,
        **extra,
    }


def test_the_knee_is_the_fastest_point_that_met_the_slos():
    points = [point("c1", 1.0, 1.0), point("c4", 3.0, 3.0), point("c16", 5.0, 2.0)]  # c16 misses: 40 % late
    assert knee(points)["load"]["point"] == "c4"
    assert knee_lines(points) == ["sweep m-server: knee at c4 (3.00 req/s, 30.0 out tok/s) under ttft:500"]


def test_attainment_just_under_the_rule_misses_and_failed_requests_miss():
    just_under = point("c1", 1.0, SLO_ATTAINMENT - 0.001)
    assert knee([just_under, point("c4", 2.0, 2.0, failed=1)]) is None
    assert knee_lines([just_under]) == [
        f"sweep m-server: no load point met the SLOs (ttft:500) for {SLO_ATTAINMENT:.0%} of its requests"
    ]


def test_the_knee_ranks_points_by_the_mean_of_their_rounds():
    stats = {"requests_per_s": {"mean": 1.5, "ci95_half": 0.1}, "goodput_requests_per_s": {"mean": 1.5}}
    lucky_last_round = point("c4", 9.0, 9.0, round_stats=stats)
    assert knee([point("c1", 2.0, 2.0), lucky_last_round])["load"]["point"] == "c1"


def test_no_slo_no_knee_line():
    assert knee_lines([point("c1", 1.0, 1.0, slo={})]) == []


def test_a_sweep_groups_only_measured_points_lightest_first():
    unrun = {**point("c2", 1.0, 1.0), "status": "skipped: no GPU"}
    heavy, light = (
        point("c8", 2.0, 2.0, load={"point": "c8", "concurrency": 8}),
        point("c1", 1.0, 1.0, load={"point": "c1", "concurrency": 1}),
    )
    assert [cell["load"]["point"] for cell in sweeps([heavy, unrun, light])["m-server"]] == ["c1", "c8"]


def test_saved_cells_give_the_same_knee_as_the_sessions_figures():
    points = [point("c1", 1.0, 1.0), point("c4", 3.0, 3.0), point("c16", 5.0, 2.0)]
    saved = [SavedCell.of(cell) for cell in points]
    assert knee(saved) is saved[1]
    assert knee_lines(saved) == knee_lines(points)
