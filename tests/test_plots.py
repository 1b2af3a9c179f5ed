"""Plots rendered from saved runs: PNG files beside the report, embedded in it, identical when re-rendered."""

import sys

import pytest
from saved_runs import cell, save_run

from pytest_vllmbench.results import plots
from pytest_vllmbench.results.report import write_report

CDF = {"ttft_ms_cdf": [100.0 + i for i in range(101)], "e2el_ms_cdf": [900.0 + 10 * i for i in range(101)]}


def saved(storage):
    save_run(storage, 1, "a", [cell(**CDF), cell("gemma-270m-server", requests_per_s=1.7)])  # older run: no CDF
    save_run(storage, 1, "gpu", [cell("gemma-12b-offline", requests_per_s=43.8, **CDF)], gpus=["NVIDIA H200"],
             machine_id="gpu-box")


def test_report_embeds_png_plots_rendered_from_saved_runs(tmp_path):
    pytest.importorskip("matplotlib")
    storage, out = tmp_path / ".benchmarks", tmp_path / "BENCHMARKS.md"
    saved(storage)
    write_report(storage, out)
    folder = tmp_path / "benchmarks-plots"
    names = sorted(path.name for path in folder.iterdir())
    assert names == [
        "latency-1-x-nvidia-h200-gemma-12b-offline.png",
        "latency-test-cpu-2-cores-no-gpu-gemma-270m-offline.png",
        "throughput-1-x-nvidia-h200.png",
        "throughput-test-cpu-2-cores-no-gpu.png",
    ]
    for path in folder.iterdir():
        assert path.read_bytes().startswith(plots.PNG_SIGNATURE)
    text = out.read_text()
    for name in names:
        assert f"](benchmarks-plots/{name})" in text
    assert text.index("## Plots") > text.index("## Results by machine")


def test_rendering_twice_gives_the_same_bytes_and_leaves_files_untouched(tmp_path):
    pytest.importorskip("matplotlib")
    storage = tmp_path / ".benchmarks"
    saved(storage)
    write_report(storage, tmp_path / "BENCHMARKS.md")
    folder = tmp_path / "benchmarks-plots"
    before = {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in folder.iterdir()}
    write_report(storage, tmp_path / "BENCHMARKS.md")
    after = {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in folder.iterdir()}
    assert after == before  # same bytes, not even rewritten: no churn in git
    data = plots.latency_cdf_png("c", CDF)
    assert data == plots.latency_cdf_png("c", CDF)
    assert b"Software" not in data and b"matplotlib" not in data.lower()


def test_without_matplotlib_the_report_has_tables_and_a_note(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    storage, out = tmp_path / ".benchmarks", tmp_path / "BENCHMARKS.md"
    saved(storage)
    write_report(storage, out)
    text = out.read_text()
    assert "_No plots: matplotlib is not installed" in text and "## Results by machine" in text
    assert not (tmp_path / "benchmarks-plots").exists()


def test_an_unchanged_plot_is_not_redrawn_and_a_changed_one_is(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    storage, out = tmp_path / ".benchmarks", tmp_path / "BENCHMARKS.md"
    saved(storage)
    write_report(storage, out)
    throughput = tmp_path / "benchmarks-plots" / "throughput-test-cpu-2-cores-no-gpu.png"
    old = throughput.read_bytes()
    with monkeypatch.context() as patched:
        patched.setitem(sys.modules, "matplotlib", None)  # nothing to redraw: matplotlib is not even needed
        write_report(storage, out)
    assert "](benchmarks-plots/throughput-test-cpu-2-cores-no-gpu.png)" in out.read_text()
    save_run(storage, 2, "b", [cell(requests_per_s=3.0)], when="2026-11-30T10:00:00")
    write_report(storage, out)
    assert throughput.read_bytes() != old and throughput.read_bytes().startswith(plots.PNG_SIGNATURE)
