"""The typed cell record: what a cell may save, each figure's unit and direction, and the docs' table of them."""

import re
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.config.gate_rules import Rule
from pytest_vllmbench.engines.base import SamplingOverrides
from pytest_vllmbench.measure.cell_record import FIGURES, CellRecord, checked_figures, saved_figures
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
        checked_figures({"cell": "x", "status": "skipped", "reason": "?"})


def test_a_figure_that_only_sometimes_applies_is_left_out_where_it_was_not_given():
    saved = saved_figures({"cell": "m-offline", "requests_per_s": 2.0})
    assert saved["requests_per_s"] == 2.0 and saved["ttft_ms_p99"] is None  # always present, null where unknown
    assert "goodput_requests_per_s" not in saved and "status" not in saved
    assert set(saved) == {name for name, f in FIGURES.items() if not f.sometimes}
    assert saved["vllmbench_schema"] == 1 and saved["n_requests"] == 0
    given_null = saved_figures({"cell": "m-server", "server_metrics": None})
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
    outcome = run_cell(plan_for(project_to=1000), FakeEngine(), [], SamplingOverrides(), {}, lambda fn: fn())
    assert set(outcome.extra_info) <= set(FIGURES)
    assert outcome.extra_info["vllmbench_schema"] == 1 and outcome.extra_info["n_requests"] == 4
