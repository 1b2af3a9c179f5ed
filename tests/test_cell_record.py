"""The typed cell record: what a cell may save, each figure's unit and direction, and the docs' table of them."""

import json
import re
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.config.gate_rules import Rule
from pytest_vllmbench.engines.base import SamplingOverrides
from pytest_vllmbench.measure.cell_record import (
    FIGURES,
    HIGHER_IS_BETTER,
    LOWER_IS_BETTER,
    SCHEMA,
    CellRecord,
    CellResult,
)
from pytest_vllmbench.measure.metrics import CDF_POINTS
from pytest_vllmbench.results.saved_run import SavedCell
from pytest_vllmbench.run.cell_run import run_cell
from tests.plans import plan_for
from tests.test_budget_energy import FakeEnergyNvml, FakeEngine

FIGURES_PAGE = Path(__file__).resolve().parents[1] / "docs" / "figures.md"


def _page_rows() -> dict[str, tuple[str, str, str]]:
    section = FIGURES_PAGE.read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([a-z0-9_]+)` \| ([^|]*) \| ([^|]*) \| ([^|]*) \|", section, flags=re.M)
    return {name: (unit.strip(), better.strip(), doc.strip()) for name, unit, better, doc in rows}


def test_the_figures_page_table_is_the_record_with_the_same_units_directions_and_descriptions():
    expected = {
        name: (f.unit, f.better or "", f.doc + (" (only where it applies)" if f.sometimes else ""))
        for name, f in FIGURES.items()
    }
    assert _page_rows() == expected


def test_an_undeclared_figure_cannot_be_saved():
    with pytest.raises(ValueError, match=r"\['tokens_per_joule'\] are not declared"):
        CellRecord.from_figures({"cell": "x", "tokens_per_joule": 3.0})
    with pytest.raises(ValueError, match="not declared"):
        CellResult.given({"cell": "x", "status": "skipped", "reason": "?"})
    with pytest.raises(ValueError, match="not declared"):
        CellResult.measured({"cell": "x"}).with_figures({"quality_custom": 1.0})


def test_a_figure_that_only_sometimes_applies_is_left_out_where_it_was_not_given():
    saved = CellResult.measured({"cell": "m-offline", "requests_per_s": 2.0}).extra_info()
    assert saved["requests_per_s"] == 2.0 and saved["ttft_ms_p99"] is None  # always present, null where unknown
    assert "goodput_requests_per_s" not in saved and "status" not in saved
    assert set(saved) == {name for name, f in FIGURES.items() if not f.sometimes}
    assert saved["vllmbench_schema"] == 1 and saved["n_requests"] == 0
    given_null = CellResult.measured({"cell": "m-server", "server_metrics": None}).extra_info()
    assert "server_metrics" in given_null and given_null["server_metrics"] is None  # "not sampled", not unknown


@given(st.sampled_from(sorted(FIGURES)), st.floats(min_value=0.5, max_value=50))
def test_every_figure_with_a_direction_can_be_gated_and_no_other(name, change):
    figure = FIGURES[name]
    if figure.better is None:
        with pytest.raises(UsageError, match="unknown metric"):
            Rule.parse(f"{name}:-{change}%")
        return
    sign = "-" if figure.better == "higher" else "+"
    assert Rule.parse(f"{name}:{sign}{change}%") == Rule(name, pytest.approx(change))


def test_a_run_cell_saves_only_declared_figures(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", FakeEnergyNvml(step_mj=(1_000_000, 0)))
    outcome = run_cell(plan_for(project_to=1000), FakeEngine(), [], SamplingOverrides(), CellResult(), lambda fn: fn())
    assert set(outcome.result.extra_info()) <= set(FIGURES)
    assert outcome.result.vllmbench_schema == 1 and outcome.result.n_requests == 4


# no control characters or line separators: reading a run puts text on one line (test_saved_run.py checks that)
_TEXT = st.text(st.characters(exclude_categories=("Cs", "Cc", "Zl", "Zp")), max_size=20)
# a figure's size stays below 2**63, as the reader requires (twice a larger one is infinite in a plot)
_FLOAT = st.floats(
    allow_nan=False, allow_infinity=False, min_value=-(2.0**63), max_value=2.0**63, exclude_min=True, exclude_max=True
)
_CDF = st.lists(_FLOAT, min_size=CDF_POINTS, max_size=CDF_POINTS)  # a latency CDF is its 101 percentiles
_BY_TYPE = {
    "int": st.integers(min_value=-(2**62), max_value=2**62),
    "float": _FLOAT,
    "str": _TEXT,
    "list[str]": st.lists(_TEXT, max_size=3),
    "list[float]": st.lists(_FLOAT, max_size=3),
    "dict[str, int]": st.dictionaries(_TEXT, st.integers(min_value=0, max_value=10**6), max_size=3),
    "dict[str, float]": st.dictionaries(_TEXT, _FLOAT, max_size=3),
    "dict[str, Any]": st.dictionaries(_TEXT, st.none() | st.booleans() | _TEXT | _FLOAT, max_size=3),
    "list[dict[str, float | None]]": st.lists(st.dictionaries(_TEXT, st.none() | _FLOAT, max_size=3), max_size=2),
}


def _value(declared: str) -> st.SearchStrategy[object]:
    base = declared.removesuffix(" | None")
    typed = _BY_TYPE.get(base, st.nothing())
    return st.none() | typed if declared.endswith("| None") else typed


_TYPES = {item.name: str(item.type) for item in fields(CellRecord)}
_IDENTITY = {"cell": st.just("m-offline"), "model": st.just("m"), "mode": st.sampled_from(["offline", "server"])}
_IDENTITY["vllmbench_schema"] = st.just(SCHEMA)  # a record always carries this version's layout
GATEABLE = HIGHER_IS_BETTER | LOWER_IS_BETTER  # rates, times, counts: never negative in a record


@given(
    st.fixed_dictionaries(
        _IDENTITY,
        optional={
            name: (st.none() | _CDF if name.endswith("_ms_cdf") else _value(declared)).map(
                lambda v, gated=name in GATEABLE: abs(v) if gated and v is not None else v
            )
            for name, declared in _TYPES.items()
            if name not in _IDENTITY
        },
    )
)
def test_a_cells_result_saves_what_the_record_rule_says_and_reads_back_as_the_same_record(figures):
    """extra_info() is what saved_figures() saved before CellResult: every figure that always applies (null where
    unknown), the sometimes ones where given; and the saved JSON reads back (results/saved_run.py) to the same
    record with no warning."""
    result = CellResult.measured(figures)
    saved = result.extra_info()
    default = CellRecord()
    assert saved == {
        name: figures.get(name, getattr(default, name))
        for name, figure in FIGURES.items()
        if not figure.sometimes or name in figures
    }
    read, warnings = SavedCell.from_saved(json.loads(json.dumps(saved)), "run.json: benchmark 1")
    assert warnings == () and read is not None
    assert all(getattr(read, name) == getattr(result, name) for name in FIGURES)
    unrun = CellResult.given(figures)
    assert unrun.extra_info() == figures and CellResult.given(json.loads(json.dumps(unrun.extra_info()))) == unrun
