"""Plots rendered from saved runs: PNG files beside the report, embedded in it, identical when re-rendered."""

import sys

import pytest
from saved_runs import cell, save_run

from pytest_vllmbench.results import plots
from pytest_vllmbench.results.report import write_report

CDF = {"ttft_ms_cdf": [100.0 + i for i in range(101)], "e2el_ms_cdf": [900.0 + 10 * i for i in range(101)]}


def saved(storage):
    save_run(storage, 1, "a", [cell(**CDF), cell("gemma-270m-server", requests_per_s=1.7)])  # older run: no CDF
    save_run(
        storage,
        1,
        "gpu",
        [cell("gemma-12b-offline", requests_per_s=43.8, **CDF)],
        gpus=["NVIDIA H200"],
        machine_id="gpu-box",
    )


def test_report_embeds_png_plots_rendered_from_saved_runs(tmp_path):
    pytest.importorskip("matplotlib")
    storage, out = tmp_path / ".benchmarks", tmp_path / "BENCHMARKS.md"
    saved(storage)
    write_report(storage, out)
    folder = tmp_path / "benchmarks" / "plots"
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
        assert f"](benchmarks/plots/{name})" in text
    assert text.index("## Plots") > text.index("## Results by machine")


def test_rendering_twice_gives_the_same_bytes_and_leaves_files_untouched(tmp_path):
    pytest.importorskip("matplotlib")
    storage = tmp_path / ".benchmarks"
    saved(storage)
    write_report(storage, tmp_path / "BENCHMARKS.md")
    folder = tmp_path / "benchmarks" / "plots"
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
    assert not (tmp_path / "benchmarks" / "plots").exists()


def test_an_unchanged_plot_is_not_redrawn_and_a_changed_one_is(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    storage, out = tmp_path / ".benchmarks", tmp_path / "BENCHMARKS.md"
    saved(storage)
    write_report(storage, out)
    throughput = tmp_path / "benchmarks" / "plots" / "throughput-test-cpu-2-cores-no-gpu.png"
    old = throughput.read_bytes()
    with monkeypatch.context() as patched:
        patched.setitem(sys.modules, "matplotlib", None)  # nothing to redraw: matplotlib is not even needed
        write_report(storage, out)
    assert "](benchmarks/plots/throughput-test-cpu-2-cores-no-gpu.png)" in out.read_text()
    save_run(storage, 2, "b", [cell(requests_per_s=3.0)], when="2026-11-30T10:00:00")
    write_report(storage, out)
    assert throughput.read_bytes() != old and throughput.read_bytes().startswith(plots.PNG_SIGNATURE)


def sweep_point(label, concurrency, rate, ttft, e2el):
    return cell(
        f"gemma-270m-server-{label}",
        mode="server",
        sweep="gemma-270m-server",
        slo_ms={"ttft": 500.0},
        load={"concurrency": concurrency, "request_rate": None, "point": label},
        requests_per_s=rate,
        goodput_requests_per_s=rate if ttft <= 500 else 0.0,
        ttft_ms_p50=ttft,
        ttft_ms_p99=ttft * 2,
        e2el_ms_p50=e2el,
        e2el_ms_p99=e2el * 2,
    )


def test_a_sweep_gets_its_curve_and_table_with_the_knee(tmp_path):
    pytest.importorskip("matplotlib")
    storage, out = tmp_path / ".benchmarks", tmp_path / "BENCHMARKS.md"
    save_run(
        storage,
        1,
        "sweep",
        [
            sweep_point("c16", 16, 3.0, 900.0, 4000.0),
            sweep_point("c1", 1, 0.5, 80.0, 900.0),
            sweep_point("c4", 4, 1.8, 300.0, 2000.0),
        ],
    )
    write_report(storage, out)
    [curve] = (tmp_path / "benchmarks" / "plots").glob("sweep-*.png")
    first = curve.read_bytes()
    assert first.startswith(plots.PNG_SIGNATURE)
    text = out.read_text()
    section = text.split("## Load sweeps")[1].split("## Memory budgets")[0]
    assert "SLOs ttft 500 ms: knee at **c4**, 1.80 req/s." in section
    rows = [line.split("|")[1].strip() for line in section.splitlines() if line.startswith("| c")]
    assert rows == ["c1", "c4", "c16"]  # lightest load first, whatever the order saved
    assert f"]({curve.relative_to(tmp_path).as_posix()})" in text
    write_report(storage, out)
    assert curve.read_bytes() == first  # same figures, same bytes


LONG_MODEL = "org-" + "very-long-model-name-" * 12  # ~250 characters


def _drawn_figures(monkeypatch):
    figures = []
    real = plots.png_bytes

    def keep(figure, digest=""):
        figures.append(figure)
        return real(figure, digest)

    monkeypatch.setattr(plots, "png_bytes", keep)
    return figures


def _text_outside(figure):
    """What is drawn beyond the image's edges (matplotlib's tight box holds every drawn text and tick label)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    drawn, box = figure.get_tightbbox(canvas.get_renderer()), figure.bbox_inches
    return (
        []
        if drawn.x0 >= -0.01 and drawn.y0 >= -0.01 and drawn.x1 <= box.x1 + 0.01 and drawn.y1 <= box.y1 + 0.01
        else [(drawn.bounds, box.bounds)]
    )


def test_long_names_give_short_stable_files_and_no_text_is_clipped(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    figures = _drawn_figures(monkeypatch)
    storage, out = tmp_path / ".benchmarks", tmp_path / "BENCHMARKS.md"
    long_cell = cell(f"{LONG_MODEL}-server", mode="server", requests_per_s=2.0, **CDF)
    save_run(storage, 1, "long", [long_cell, cell(requests_per_s=1.0, **CDF)], gpus=["NVIDIA H200"] * 2)
    write_report(storage, out)
    names = [path.name for path in (tmp_path / "benchmarks" / "plots").iterdir()]
    assert names and max(len(name) for name in names) <= 64
    assert plots.slug(LONG_MODEL) == plots.slug(LONG_MODEL) != plots.slug(LONG_MODEL + "x")
    assert figures and [_text_outside(figure) for figure in figures] == [[]] * len(figures)


def test_each_cdf_names_its_mode(monkeypatch):
    pytest.importorskip("matplotlib")
    figures = _drawn_figures(monkeypatch)
    plots.latency_cdf_png("a", {**CDF, "mode": "server"})
    plots.latency_cdf_png("b", {**CDF, "mode": "offline"})
    server, offline = (figure.axes[0].get_xlabel() for figure in figures)
    assert "(server)" in server and "offline" not in server
    assert "offline" in offline


def test_the_report_removes_its_own_plots_that_it_no_longer_shows(tmp_path):
    pytest.importorskip("matplotlib")
    storage, out = tmp_path / ".benchmarks", tmp_path / "BENCHMARKS.md"
    saved(storage)
    write_report(storage, out)
    folder = tmp_path / "benchmarks" / "plots"
    stale = folder / "latency-old-cell.png"
    stale.write_bytes((folder / "throughput-test-cpu-2-cores-no-gpu.png").read_bytes())
    someone_elses = folder / "diagram.png"
    someone_elses.write_bytes(plots.PNG_SIGNATURE + b"not ours")
    write_report(storage, out)
    assert not stale.exists() and someone_elses.exists()
