"""Odd values in real saved runs: report, summary and gate never raise, and gate exits only with its own codes."""

import copy
import json
import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from saved_runs import cell, save_run

from pytest_vllmbench.cli import main
from pytest_vllmbench.results import gate
from pytest_vllmbench.results.report import render
from pytest_vllmbench.results.report_sweeps import sweep_plots
from pytest_vllmbench.results.report_tables import plot_cells
from pytest_vllmbench.results.saved_run import clean_cell
from pytest_vllmbench.results.storage import load_runs, read_run, scan_runs
from pytest_vllmbench.results.summary import summary_block

REAL = sorted(Path(__file__).parent.parent.glob(".benchmarks/*/*.json"))
ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([10**400, -(10**400), 2**63, math.nan, math.inf, -math.inf, "90%", "x", "", "\ud800", "x" * 5000]),
    st.integers(),
    st.floats(),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.one_of(st.none(), st.floats(), st.text(max_size=2)), max_size=2),
)
NESTED = ("engine_args", "engine_args_set", "dataset", "load", "slo_ms", "sampling", "engine_settings")
GATE_CODES = {gate.EXIT_OK, gate.EXIT_REGRESSION, gate.EXIT_USAGE, gate.EXIT_MISSING_DATA}


def _cells(data):
    return [bench["extra_info"] for bench in data["benchmarks"] if "vllmbench_schema" in bench.get("extra_info", {})]


def _mutate(data, draw):
    mutated = copy.deepcopy(data)
    target = draw(st.sampled_from(_cells(mutated) + (mutated.get("vllmbench") or {}).get("unrun", [])))
    key = draw(st.sampled_from(sorted(target)))
    stats = target.get("round_stats")
    objects = [name for name in NESTED if isinstance(target.get(name), dict)]
    if isinstance(stats, dict) and stats and draw(st.booleans()):  # one figure inside the rounds' statistics
        metric = draw(st.sampled_from(sorted(stats)))
        target, key = stats[metric], draw(st.sampled_from(sorted(stats[metric]) or ["mean"]))
    elif objects and draw(st.booleans()):  # one value inside an object the report reads keys of
        target = target[draw(st.sampled_from(objects))]
        key = draw(st.sampled_from(sorted(target) + ["tensor_parallel_size", "pipeline_parallel_size", "ray_replicas"]))
    target[key] = draw(ODD)
    return mutated


@pytest.mark.skipif(not REAL, reason="no saved run under .benchmarks/")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(REAL), st.data())
def test_one_odd_field_in_a_real_saved_run_never_breaks_report_summary_or_gate(path, data):
    original = json.loads(path.read_text())
    mutated = _mutate(original, data.draw)
    with tempfile.TemporaryDirectory() as tmp:
        storage = Path(tmp) / "storage" / path.parent.name
        storage.mkdir(parents=True)
        base, bad = storage / "0001_base.json", storage / "0002_bad.json"
        base.write_text(json.dumps(original))
        bad.write_text(json.dumps(mutated))
        runs, warnings = scan_runs(storage.parent)
        assert all(isinstance(line, str) and line.encode("utf-8") for line in warnings)
        render(runs).encode("utf-8")
        plot_cells(runs), sweep_plots(runs)  # the labels and load points the plots are drawn with
        for run in runs:
            summary_block(run.cells, saved_run=run.path).encode("utf-8")
        code = main(["gate", str(base), str(bad), "--rule", "requests_per_s:-5%", "--rule", "ttft_ms_p50:+10%:noise"])
        assert code in GATE_CODES


def test_a_lone_surrogate_in_a_cell_id_skips_that_cell_naming_file_and_field(tmp_path):
    save_run(tmp_path, 1, "a", [cell(), cell("\ud800-offline")])
    runs, warnings = scan_runs(tmp_path)
    assert [c["cell"] for c in runs[0].cells] == ["gemma-270m-offline"]
    [warning] = warnings
    assert "0001_a.json: benchmark 2: skipped: field 'cell'" in warning
    render(runs).encode("utf-8")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("quality_accuracy", "90%"),
        ("n_failed", 10**400),
        ("ci95_high", None),
        ("round_stats", "x"),
        ("slo_ms", "x"),
        ("load", "x"),
    ],
)
def test_a_field_that_does_not_fit_is_dropped_with_a_warning_and_the_cell_kept(tmp_path, field, value):
    figures = {"round_stats": {"requests_per_s": {"mean": 1.0, "ci95_high": value}}} if field == "ci95_high" else {}
    path = save_run(tmp_path, 1, "a", [cell(**(figures or {field: value}))])
    run = read_run(path, tmp_path)
    assert run is not None and len(run.cells) == 1
    if field == "ci95_high":  # null is a declared value for a statistic: kept, read as missing
        assert run.cells[0]["round_stats"]["requests_per_s"]["ci95_high"] is None
        return
    assert field not in run.cells[0]
    assert any(f"field {field!r} dropped" in line and "0001_a.json" in line for line in run.warnings)
    assert summary_block(run.cells)
    render(load_runs(tmp_path))


def test_clean_cell_keeps_a_well_formed_cell_as_it_is():
    stats = {"n": 3, "mean": 1.0, "stddev": 0.1, "ci95_low": 0.9, "ci95_high": 1.1, "ci95_half": 0.1}
    good = cell(round_stats={"requests_per_s": stats})
    cleaned = clean_cell(good, "here")
    assert cleaned.figures == good and cleaned.warnings == ()


MARKER_LINES = "\n<!-- vllmbench:hand-written pwn -->\nINJECTED\n<!-- /vllmbench:hand-written pwn -->\n"


@pytest.mark.parametrize("where", ["cell", "machine", "engine_settings key"])
def test_line_breaks_in_a_saved_run_stay_on_their_line_and_the_report_can_be_made_again(tmp_path, where):
    """A line break read from a run once put a marker line of its own into BENCHMARKS.md: the next report then
    refused its own file."""
    storage = tmp_path / "s"
    odd = cell()
    if where == "cell":
        odd["cell"] = "x" + MARKER_LINES + "-offline"
    cells = [odd]
    if where == "engine_settings key":  # keys are shown too: the engine table's header, where two cells differ
        odd["engine_settings"] = {"x" + MARKER_LINES: 1}
        cells.append(cell("gemma-270m-server", engine_settings={"x" + MARKER_LINES: 2}))
    path = save_run(storage, 1, "a", cells)
    if where == "machine":
        data = json.loads(path.read_text())
        data["machine_info"]["vllmbench"]["cpu_name"] = "CPU" + MARKER_LINES
        path.write_text(json.dumps(data))
    out = tmp_path / "R.md"
    for _ in range(2):
        assert main(["report", "--storage", str(storage), "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert "INJECTED" not in lines and not any(line.startswith("<!-- vllmbench:hand-written pwn") for line in lines)
    shown = [line for line in lines if "INJECTED" in line]
    assert shown and all("hand-written pwn" in line for line in shown)  # shown whole, on the line it belongs to


def test_a_run_file_whose_name_holds_a_line_break_is_skipped_naming_it(tmp_path):
    storage = tmp_path / "s"
    save_run(storage, 1, "a", [cell()])
    save_run(storage, 2, "b\nINJECTED", [cell("gemma-270m-server")])
    runs, skipped = scan_runs(storage)
    assert [run.name for run in runs] == ["0001_a"]
    assert len(skipped) == 1 and "0002_b INJECTED.json: skipped" in skipped[0] and "\n" not in skipped[0]


@pytest.mark.parametrize("odd", ["deep", "fifo", "device"])
def test_a_file_named_like_a_run_that_cannot_be_a_run_is_skipped_naming_it_never_a_hang_or_traceback(
    tmp_path, capsys, odd
):
    import os

    storage = tmp_path / "s"
    good = save_run(storage, 1, "a", [cell()])
    bad = good.with_name("0002_odd.json")
    if odd == "deep":  # Python's JSON reader recurses: a RecursionError, not a ValueError
        bad.write_text('{"benchmarks": [' + "[" * 200_000 + "]" * 200_000 + "]}")
    elif odd == "fifo":  # opening it to read would wait for a writer for ever
        os.mkfifo(bad)
    else:
        bad.symlink_to("/dev/zero")  # never ends
    runs, skipped = scan_runs(storage)
    assert [run.name for run in runs] == ["0001_a"]
    assert len(skipped) == 1 and skipped[0].startswith(f"{bad}: skipped")
    assert main(["report", "--storage", str(storage), "--out", str(tmp_path / "R.md")]) == 0
    assert main(["gate", str(good), str(bad), "--rule", "requests_per_s:-5%"]) != 0
    assert "0002_odd.json" in capsys.readouterr().err


@pytest.mark.parametrize("schema", [99, 0, "1", True])
def test_a_cell_of_a_layout_this_version_does_not_read_is_skipped_naming_the_field(tmp_path, capsys, schema):
    """A run of a newer layout (or no layout) was gated and reported as if it were this one, without a word."""
    storage = tmp_path / "s"
    a = save_run(storage, 1, "a", [cell(vllmbench_schema=schema)])
    b = save_run(storage, 2, "b", [cell(vllmbench_schema=schema)])
    runs, skipped = scan_runs(storage)
    assert runs == [] and all("vllmbench_schema" in line and "reads layouts 1 to 1" in line for line in skipped)
    assert main(["gate", str(a), str(b), "--rule", "requests_per_s:-5%"]) != 0
    assert "vllmbench_schema" in capsys.readouterr().err


def test_a_negative_rate_or_time_is_dropped_with_a_warning_not_gated_as_minus_infinity(tmp_path, capsys):
    storage = tmp_path / "s"
    a = save_run(storage, 1, "a", [cell(requests_per_s=2.0)])
    b = save_run(storage, 2, "b", [cell(requests_per_s=-5.0, wall_s=-1.0)])
    [_, run], skipped = scan_runs(storage)
    assert run.cells[0].get("requests_per_s") is None
    assert any("'requests_per_s' dropped: a rate, time or count is never negative" in line for line in skipped)
    assert main(["gate", str(a), str(b), "--rule", "requests_per_s:-5%"]) == 2  # it said -inf % and passed
    out, err = capsys.readouterr()
    assert "inf" not in out and "never negative (-5.0)" in err and "not gated" in err


def test_a_negative_rounds_mean_is_dropped_but_a_negative_score_or_interval_end_is_kept(tmp_path):
    stats = {"n": 3, "mean": -10.0, "stddev": 1.0, "ci95_low": -12.0, "ci95_high": -8.0, "ci95_half": 2.0}
    wide = {"n": 3, "mean": 1.2, "stddev": 1.0, "ci95_low": -1.4, "ci95_high": 3.8, "ci95_half": 2.6}
    save_run(tmp_path, 1, "a", [cell(score=-0.5, round_stats={"requests_per_s": stats, "wall_s": wide})])
    [run], skipped = scan_runs(tmp_path)
    [read] = run.cells
    assert read.score == -0.5  # a project's scoring hook may give any number
    assert set(read.round_stats or {}) == {"wall_s"}  # the noise-aware gate passed a mean of -10 as +110 %
    assert len(skipped) == 1 and "round_stats of 'requests_per_s' dropped: a negative mean (-10.0)" in skipped[0]


def test_a_saved_copy_number_is_dropped_since_only_the_report_numbers_a_runs_copies(tmp_path):
    run = read_run(save_run(tmp_path, 1, "a", [cell(copy_in_run=7)]), tmp_path)
    assert run is not None and run.cells[0].copy == 1 and "copy_in_run" not in run.cells[0]
    assert any("'copy_in_run' dropped" in line and "0001_a.json" in line for line in run.warnings)
    assert "copy 7" not in render(load_runs(tmp_path))


RUNS = Path(__file__).parent.parent / ".benchmarks" / "Linux-CPython-3.12-64bit"
BOTH_MODES = RUNS / "0022_h100-seed-both-mistral-7b-batch3000-dummy-r3.json"  # rounds, CDFs, engine args
SWEEP = RUNS / "0010_h200-seed-server-gemma-12b-batch400-dummy-sweep.json"  # load points with SLOs


def _with_every_cell(path: Path, changes: dict, out: Path) -> None:
    """A copy of a saved run with `changes` ({'dotted.key': value}) made in every cell."""
    data = json.loads(path.read_text())
    for bench in data["benchmarks"]:
        for dotted, value in changes.items():
            *parents, last = dotted.split(".")
            target = bench["extra_info"]
            for key in parents:
                target = target.setdefault(key, {})
            target[last] = value
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data))


@pytest.mark.skipif(not BOTH_MODES.exists() or not SWEEP.exists(), reason="the committed runs are not here")
@pytest.mark.parametrize(
    ("run", "changes", "dropped"),
    [
        (
            BOTH_MODES,
            {"engine_args.tensor_parallel_size": "2x"},
            "field 'engine_args': key 'tensor_parallel_size' dropped",
        ),
        (
            BOTH_MODES,
            {"engine_args.pipeline_parallel_size": 2**64},
            "field 'engine_args': key 'pipeline_parallel_size' dropped",
        ),
        (BOTH_MODES, {"dataset.sha256": ["abc"]}, "field 'dataset': key 'sha256' dropped"),
        (SWEEP, {"load.concurrency": "sixteen"}, "field 'load': key 'concurrency' dropped"),
        (SWEEP, {"load.request_rate": [1]}, "field 'load': key 'request_rate' dropped"),
        (SWEEP, {"slo_ms.ttft": math.nan}, "field 'slo_ms' dropped"),
        (BOTH_MODES, {"ttft_ms_cdf": [120.5], "e2el_ms_cdf": [900.0]}, "a CDF is 101 percentiles, not 1"),
        (BOTH_MODES, {"ttft_ms_cdf": [math.nan] * 101}, "field 'ttft_ms_cdf' dropped"),
        (SWEEP, {"requests_per_s": 1e308}, "field 'requests_per_s' dropped"),
        (BOTH_MODES, {"round_stats.requests_per_s.mean": 1e308}, "field 'round_stats' dropped"),
    ],
)
def test_an_odd_value_inside_a_saved_cell_is_dropped_and_the_report_with_its_plots_is_written(
    tmp_path, capsys, run, changes, dropped
):
    pytest.importorskip("matplotlib")  # the plots drew these values
    storage = tmp_path / ".benchmarks"
    _with_every_cell(run, changes, storage / RUNS.name / "0001_odd.json")
    report = tmp_path / "BENCHMARKS.md"
    assert main(["report", "--storage", str(storage), "--out", str(report)]) == 0
    assert dropped in capsys.readouterr().err
    assert report.is_file() and list((tmp_path / "benchmarks" / "plots").glob("*.png"))
