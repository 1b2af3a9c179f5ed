"""Load sweeps: parsing the lists, one cell per point on one engine (the knee: tests/test_knee.py)."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.config.loads import (
    LoadPoint,
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
        ("request_rate", "5e-324", "at least 1.16e-05 req/s"),  # sent all at once: 1 / rate overflowed
        ("request_rate", "1e-300", "at least 1.16e-05 req/s"),  # waited for ever
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
    if len({LoadPoint(request_rate=r).label for r in rates}) < len(rates):
        with pytest.raises(UsageError, match="name the same cell"):
            parse_request_rates(text_r)
        return
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


def test_rates_that_would_name_the_same_cell_are_refused():
    # found by hypothesis: both label as r0.01, so two cells had one id
    with pytest.raises(UsageError, match=r"name the same cell \(r0.01, r0.01\)"):
        parse_request_rates("0.01,0.010000000000000002")
