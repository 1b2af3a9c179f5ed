"""Load sweeps: parsing the lists, one cell per point on one engine, and the SLO knee."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.config.loads import (
    SLO_ATTAINMENT,
    LoadPoint,
    knee,
    knee_lines,
    load_points,
    parse_concurrencies,
    parse_request_rates,
)
from pytest_vllmbench.config.matrix import build_matrix
from pytest_vllmbench.config.registry import load_registry
from pytest_vllmbench.config.settings import merge_sources, resolve

ROOT = Path(__file__).resolve().parents[1]


def settings_from(**cli):
    return resolve(merge_sources(cli, {}, {}), ROOT)


def test_lists_become_load_points_lightest_first():
    settings = settings_from(concurrency="16,1,4", request_rate="8,inf")
    assert [p.label for p in settings.load_points] == ["c1-r8", "c1", "c4-r8", "c4", "c16-r8", "c16"]
    assert settings.concurrency is None and settings.request_rate is None  # each cell carries its own


def test_a_single_value_is_no_sweep_and_keeps_the_plain_settings():
    settings = settings_from(concurrency="8", request_rate="2.5")
    assert (settings.load_points, settings.concurrency, settings.request_rate) == ((), 8, 2.5)
    assert settings_from(request_rate="inf").request_rate is None  # inf: all at once, as in vllm bench serve


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("concurrency", "1,0", "--concurrency must be >= 1"),
        ("concurrency", "1,x", "--concurrency expects integers"),
        ("concurrency", "4,4", "lists a value twice"),
        ("request_rate", "2,nan", "--request-rate expects a finite"),
        ("request_rate", "2,-inf", "--request-rate expects a finite"),
        ("request_rate", "0,2", "above 0"),
        ("request_rate", "1e999", "--request-rate expects a finite"),
    ],
)
def test_bad_lists_are_usage_errors_naming_the_option(option, value, message):
    with pytest.raises(UsageError, match=message):
        settings_from(**{option: value})


@given(
    st.lists(st.integers(1, 4096), min_size=1, max_size=6, unique=True),
    st.lists(st.floats(0.01, 1e4, allow_nan=False) | st.none(), min_size=1, max_size=4, unique=True),
)
def test_every_point_has_its_own_label_and_round_trips(concurrencies, rates):
    text_c = ",".join(map(str, concurrencies))
    text_r = ",".join("inf" if r is None else repr(r) for r in rates)
    points = load_points(parse_concurrencies(text_c), parse_request_rates(text_r))
    assert len(points) == len(concurrencies) * len(rates)
    assert len({p.label for p in points}) == len(points)
    assert {(p.concurrency, p.request_rate) for p in points} == {(c, r) for c in concurrencies for r in rates}


def test_a_sweep_makes_one_cell_per_point_sharing_one_engine_and_offline_stays_one_cell():
    points = (LoadPoint(1), LoadPoint(4), LoadPoint(16))
    cells = build_matrix(("gemma-270m",), ("offline", "server"), load_registry(), points)
    assert [c.id for c in cells] == [
        "gemma-270m-offline",
        "gemma-270m-server-c1",
        "gemma-270m-server-c4",
        "gemma-270m-server-c16",
    ]
    assert len({c.engine_key for c in cells if c.mode == "server"}) == 1  # one server start for the three points
    assert {c.sweep for c in cells[1:]} == {"gemma-270m-server"}


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


@pytest.mark.parametrize("mode", ["endpoint", "offline"])
def test_two_models_whose_cell_ids_collide_are_a_usage_error(mode):
    with pytest.raises(UsageError, match="org1/llama and --model=org2/llama would both be cell llama-"):
        build_matrix(("org1/llama", "org2/llama"), (mode,), load_registry())


def test_two_names_of_one_model_make_one_cell():
    registry = load_registry()
    source = registry.models["gemma-270m"].source
    cells = build_matrix(("gemma-270m", source), ("offline",), registry)
    assert [cell.id for cell in cells] == ["gemma-270m-offline"]


def test_colliding_endpoint_models_stop_the_session_with_exit_4(pytester):
    pytester.makepyfile(test_batch="def test_batch(vllmbench_cell, benchmark):\n    vllmbench_cell.run(benchmark)\n")
    result = pytester.runpytest(
        "--mode=endpoint", "--endpoint=http://127.0.0.1:9/v1", "--model=org1/llama", "--model=org2/llama"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "would both be cell llama-endpoint" in result.stderr.str()
