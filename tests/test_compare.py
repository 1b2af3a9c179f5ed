import json
from pathlib import Path

import pytest

from pytest_vllmbench.cli import main
from pytest_vllmbench.measure.rounds import central
from pytest_vllmbench.results.storage import load_runs

COMMITTED = Path(__file__).resolve().parent.parent / ".benchmarks"
H200 = "Linux-CPython-3.12-64bit"
CPU = "Linux-CPython-3.11-64bit"


def _compare(capsys, *argv):
    code = main(["compare", *argv, "--storage", str(COMMITTED)])
    out, err = capsys.readouterr()
    return code, out, err


def _run(name):
    return next(run for run in load_runs(COMMITTED) if run.name == name)


def test_compare_json_has_every_shared_gateable_figure_with_its_change(capsys):
    code, out, _ = _compare(
        capsys, f"{H200}/0001_h200-offline-batch1000-dummy.json", "0002_h200-parity-dummy", "--format", "json"
    )
    assert code == 0
    found = json.loads(out)
    row = next(r for r in found["rows"] if r["cell"] == "gemma-12b-offline" and r["figure"] == "requests_per_s")
    a = central(_run("0001_h200-offline-batch1000-dummy").cells[0], "requests_per_s")
    b = central(_run("0002_h200-parity-dummy").cells[0], "requests_per_s")
    assert row["a"] == a and row["b"] == b
    assert row["change_pct"] == pytest.approx((b - a) / a * 100)
    assert row["overlap"] is None and row["verdict"] == ("better" if b > a else "worse")
    assert {r["figure"] for r in found["rows"]} >= {"ttft_ms_p99", "projected_hours", "load_s"}


def test_compare_says_when_rounds_overlap(capsys):
    sweep = f"{CPU}/0004_cpu-sweep.json"
    code, out, _ = _compare(capsys, sweep, sweep, "--format", "markdown")
    assert code == 0
    line = next(line for line in out.splitlines() if "gemma-270m-server-c16" in line and "| requests_per_s " in line)
    assert "| yes " in line and "within the noise" in line


def test_compare_lists_cells_only_in_one_run(capsys):
    code, out, _ = _compare(capsys, f"{CPU}/0004_cpu-sweep.json", "0001_bench")
    assert code == 0
    assert "Only in A: gemma-270m-server-c1, gemma-270m-server-c16, gemma-270m-server-c4" in out
    assert "Only in B: gemma-270m-offline, gemma-270m-server" in out
    assert "different machines" in out


def test_compare_latest_and_an_ambiguous_number(capsys):
    code, out, _ = _compare(capsys, "latest", "latest")
    assert code == 0 and f"A: {load_runs(COMMITTED)[-1].path}" in out
    code, _, err = _compare(capsys, "1", "latest")
    assert code == 2 and "names several runs" in err and "Traceback" not in err
    code, _, err = _compare(capsys, "nope", "latest")
    assert code == 2 and "no saved run 'nope'" in err


def test_compare_latest_tilde_counts_back_from_the_newest_run(capsys):
    runs = load_runs(COMMITTED)
    code, out, _ = _compare(capsys, "latest~1", "latest")
    assert code == 0 and f"A: {runs[-2].path}" in out and f"B: {runs[-1].path}" in out
    code, _, err = _compare(capsys, f"latest~{len(runs)}", "latest")
    assert code == 2 and "saved run(s)" in err
