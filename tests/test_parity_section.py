"""The report's server-parity rows (results/parity_section.py) from a parity_summary.py JSON."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pytest_vllmbench.results.parity_section import PARITY_TARGET, parity_section, ratio_holds


def _method(values: list[float]) -> dict[str, Any]:
    mean = sum(values) / len(values)
    return {"n": len(values), "values": values, "mean": mean, "ci95_low": min(values), "ci95_high": max(values)}


def _summary() -> dict[str, Any]:
    return {
        "methods": {"owned": _method([90.0, 95.0, 100.0]), "bench": _method([96.0, 98.0, 101.0])},
        "ratio_owned_vs_bench": {"mean": 0.97, "range_low": 0.891, "range_high": 1.042},
        "ratio_endpoint_vs_bench": {"mean": 0.8, "range_low": 0.7, "range_high": 0.9},
        "host_load": {"bench-1": {"gpu_busy_pct": 55.0, "cpu_client_pct": 99.5, "cpu_api-server_pct": 97.1}},
    }


def test_rows_name_each_method_ratio_and_run() -> None:
    text = "\n".join(parity_section(_summary(), "benchmarks/results/h200/server_parity.json"))
    assert "| owned-server cell | 3 | 95.0 | 90.0 to 100.0 |" in text
    assert "| `vllm bench serve` | 3 |" in text
    assert "endpoint cell (hand-started" not in text  # no endpoint runs: no row
    assert "| owned-server cell / vllm bench serve | 0.970 | 0.891 to 1.042 | yes |" in text
    assert "| endpoint cell / vllm bench serve | 0.800 | 0.700 to 0.900 | no |" in text
    assert "| bench-1 | 55.0 | 99.5 | 97.1 | - |" in text


def test_no_runs_says_so() -> None:
    assert parity_section({}, "x.json") == ["No server-parity runs in `x.json`."]


@given(st.floats(0.1, 2.0), st.floats(0.1, 2.0), st.floats(0.1, 2.0))
def test_a_ratio_holds_when_its_spread_covers_one_or_its_mean_reaches_the_target(
    mean: float, low: float, high: float
) -> None:
    low, high = min(low, high), max(low, high)
    ratio = {"mean": mean, "range_low": low, "range_high": high}
    assert ratio_holds(ratio) == (low <= 1.0 <= high or mean >= PARITY_TARGET)


def test_a_ratio_without_a_mean_does_not_hold() -> None:
    assert not ratio_holds({"range_low": 0.5, "range_high": 1.5})


def test_the_report_shows_the_parity_summaries_kept_beside_it(tmp_path):
    import json

    from pytest_vllmbench.results.report import write_report
    from tests.saved_runs import cell, save_run

    storage = tmp_path / ".benchmarks"
    save_run(storage, 1, "cpu", [cell("gemma-270m-server")])
    kept = tmp_path / "benchmarks" / "results" / "h200"
    kept.mkdir(parents=True)
    (kept / "server_parity.json").write_text(json.dumps(_summary()))
    (kept / "server_parity_broken.json").write_text("{not json")
    text = write_report(storage, tmp_path / "BENCHMARKS.md").read_text()
    section = text.split("## Server parity with `vllm bench serve`")[1].split("\n## ")[0]
    assert "benchmarks/results/h200/server_parity.json" in section and "| 0.970 |" in section
    assert "server_parity_broken.json` could not be read" in section


def test_a_hostile_parity_summary_neither_hangs_the_report_nor_writes_a_line_of_its_own(tmp_path):
    import json
    import os

    from pytest_vllmbench.results.report import write_report
    from tests.saved_runs import cell, save_run

    storage = tmp_path / ".benchmarks"
    save_run(storage, 1, "cpu", [cell("gemma-270m-server")])
    kept = tmp_path / "benchmarks" / "results" / "h200"
    kept.mkdir(parents=True)
    marker = "\n<!-- vllmbench:hand-written pwn -->\n"
    summary = _summary() | {"host_load": {f"run{marker}": {"gpu_busy_pct": 1.0}}}
    summary["methods"]["owned"]["n"] = f"3{marker}"
    (kept / "server_parity.json").write_text(json.dumps(summary))
    (kept / "server_parity_odd.json").write_text(json.dumps({"methods": {"owned": [1, 2]}}))
    os.mkfifo(kept / "server_parity_fifo.json")  # reading it would wait for a writer for ever
    out = tmp_path / "BENCHMARKS.md"
    for _ in range(2):  # the second report reads the first: a marker line in it would be refused
        lines = write_report(storage, out).read_text().splitlines()
    assert "<!-- vllmbench:hand-written pwn -->" not in lines
    assert any("server_parity_fifo.json` could not be read" in line for line in lines)
    assert any("server_parity_odd.json`: not a summary" in line for line in lines)
