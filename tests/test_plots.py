"""Plots rendered from saved runs: PNG files beside the report, embedded in it, identical when re-rendered."""

import io
import re
import shutil
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from saved_runs import cell, save_run

from pytest_vllmbench.results import plot_names, plots
from pytest_vllmbench.results.report import write_report

COMMITTED_RUNS = Path(__file__).resolve().parents[1] / ".benchmarks"

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
        "cdf-1x-h200-gemma-12b-offline-batch-5k.png",
        "cdf-test-cpu-2c-gemma-270m-offline-batch-5k.png",
        "cdf-test-cpu-2c-gemma-270m-server-batch-5k.png",  # its p50 and p99 only: the run saved no CDF
        "throughput-1x-h200.png",
        "throughput-test-cpu-2c.png",
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
    throughput = tmp_path / "benchmarks" / "plots" / "throughput-test-cpu-2c.png"
    old = throughput.read_bytes()
    with monkeypatch.context() as patched:
        patched.setitem(sys.modules, "matplotlib", None)  # nothing to redraw: matplotlib is not even needed
        write_report(storage, out)
    assert "](benchmarks/plots/throughput-test-cpu-2c.png)" in out.read_text()
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


def _drawn_texts(figure):
    """Every text matplotlib draws: tick labels of ticks outside the axis' view are made but never drawn."""
    from matplotlib.text import Text

    undrawn = set()
    for axes in figure.axes:
        for axis in (axes.xaxis, axes.yaxis):
            low, high = sorted(axis.get_view_interval())
            slack = 1e-9 * (high - low)
            for tick, at in zip(axis.get_major_ticks(), axis.get_majorticklocs(), strict=False):
                if not low - slack <= at <= high + slack:
                    undrawn |= {id(tick.label1), id(tick.label2)}
    return [
        text
        for text in figure.findobj(Text)
        if id(text) not in undrawn and text.get_visible() and text.get_text().strip()
    ]


def _clipped(figure):
    """What is drawn beyond the image: each text whose extent leaves the figure, and ink on the image's edge."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    canvas, buffer = FigureCanvasAgg(figure), io.BytesIO()
    canvas.print_png(buffer)  # draws once: the extents below are those of this drawing
    renderer, frame = canvas.get_renderer(), figure.bbox.padded(0.5)
    extents = [(text.get_text(), text.get_window_extent(renderer)) for text in _drawn_texts(figure)]
    outside = [(text, box.bounds) for text, box in extents if not (frame.contains(*box.p0) and frame.contains(*box.p1))]
    pixels = np.asarray(Image.open(buffer).convert("L"))
    edge = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    return outside + ([("ink on the edge", int(edge.min()))] if edge.min() < 250 else [])


def test_the_clip_check_sees_a_clipped_title():
    pytest.importorskip("matplotlib")
    figure = plots._figure(3.0, 2.0)
    figure.add_subplot().set_title("a title far too long to fit in three inches of figure, unwrapped")
    assert _clipped(figure)


@pytest.fixture(scope="module")
def committed_report(tmp_path_factory):
    """The report of the committed runs, rendered once for the tests that read it: its figures and its text."""
    pytest.importorskip("matplotlib")
    with pytest.MonkeyPatch.context() as monkeypatch:
        figures = _drawn_figures(monkeypatch)
        folder = tmp_path_factory.mktemp("committed")
        storage, out = folder / ".benchmarks", folder / "BENCHMARKS.md"
        shutil.copytree(COMMITTED_RUNS, storage)
        write_report(storage, out)
    return figures, out.read_text()


# tests/conftest.py ONE_WORKER: one worker renders the committed runs for both tests
def test_no_text_is_clipped_in_any_plot_of_the_committed_runs_and_a_long_named_cell(
    committed_report, tmp_path, monkeypatch
):
    """The committed runs (the H200 throughput, sweep and CDF plots were clipped once) and a ~250-character name."""
    committed, _ = committed_report
    long_named = _drawn_figures(monkeypatch)
    storage = tmp_path / ".benchmarks"
    long_cell = cell(f"{LONG_MODEL}-server", mode="server", requests_per_s=2.0, **CDF)
    save_run(storage, 99, "long", [long_cell], gpus=["NVIDIA H200"], machine_id="long-names")
    write_report(storage, tmp_path / "BENCHMARKS.md")
    drawn = {figure.axes[0].get_title().split(":")[0] for figure in committed}
    assert drawn == {"Throughput", "Latency CDF", "Load sweep"} and len(committed) > 20
    assert {figure.axes[0].get_title().split(":")[0] for figure in long_named} == {"Throughput", "Latency CDF"}
    found = {figure.axes[0].get_title(): _clipped(figure) for figure in [*committed, *long_named]}
    assert {title: clipped for title, clipped in found.items() if clipped} == {}


def test_each_cdf_names_its_mode(monkeypatch):
    """Server cells were labelled "(queued, offline)": the axis text was fixed, whatever the mode; ray queues
    every request at once as offline does."""
    pytest.importorskip("matplotlib")
    figures = _drawn_figures(monkeypatch)
    for mode in ("server", "endpoint", "offline", "ray"):
        plots.latency_cdf_png(mode, {**CDF, "mode": mode})
    server, endpoint, offline, ray = (figure.axes[0].get_xlabel() for figure in figures)
    assert "sent (server)" in server and "offline" not in server and "queued" not in server
    assert "sent (endpoint)" in endpoint
    assert "queued (all at once, offline)" in offline
    assert "queued (all at once, ray)" in ray


def test_every_gpu_cell_of_the_committed_runs_gets_a_cdf(committed_report):
    """Runs saved before the 101-point CDFs existed get one from their p50, p90 and p99, and say so."""
    figures, text = committed_report
    charts = {
        f.axes[0].get_title().removeprefix("Throughput: "): f for f in figures if "Throughput" in f.axes[0].get_title()
    }
    gpu_charts = {machine: chart for machine, chart in charts.items() if "H200" in machine}
    assert len(gpu_charts) == 2
    for machine, chart in gpu_charts.items():
        bars = [label.get_text().replace("\n", " ") for label in chart.axes[0].get_yticklabels()]
        assert len(bars) > 5
        assert [bar for bar in bars if f"![Latency CDF, {bar}, {machine}](benchmarks/plots/cdf-" not in text] == []
    titles = [f.axes[0].get_title().replace("\n", " ") for f in figures]
    assert [title for title in titles if "only p50, p90 and p99 saved" in title]  # runs saved before CDFs were


def test_a_cdf_from_saved_percentiles_only_says_so(monkeypatch):
    pytest.importorskip("matplotlib")
    figures = _drawn_figures(monkeypatch)
    few = {"mode": "offline", "ttft_ms_p50": 100.0, "ttft_ms_p90": 150.0, "ttft_ms_p99": 300.0, "e2el_ms_p50": 900.0}
    plots.latency_cdf_png("old", few)
    plots.latency_cdf_png("new", {**CDF, "mode": "offline"})
    old, new = figures
    assert "only p50, p90 and p99 saved" in old.axes[0].get_title().replace("\n", " ")
    assert "only" not in new.axes[0].get_title()
    [ttft, e2el] = old.axes[0].get_lines()
    assert list(ttft.get_ydata()) == [0.5, 0.9, 0.99] and list(e2el.get_ydata()) == [0.5]
    assert plots.has_latency(few) and not plots.has_cdf(few) and not plots.has_latency({"mode": "offline"})


def test_the_throughput_bars_show_the_rounds_mean_and_interval_as_the_tables(monkeypatch):
    pytest.importorskip("matplotlib")
    figures = _drawn_figures(monkeypatch)
    rounds = {
        "requests_per_s": 9.0,  # the last round's, which the tables no longer show
        "rounds": [{"requests_per_s": 5.0}, {"requests_per_s": 6.0}, {"requests_per_s": 9.0}],
        "round_stats": {"requests_per_s": {"n": 3, "mean": 6.6667, "ci95_half": 5.17, "ci95_low": 1.5}},
    }
    plots.throughput_png("m", [("a", cell(**rounds))])
    [figure] = figures
    texts = [text.get_text() for text in figure.axes[0].texts]
    assert any("6.67 ± 5.17 req/s" in text for text in texts) and not any("9.00" in text for text in texts)
    [bar] = figure.axes[0].patches
    assert bar.get_width() == pytest.approx(6.6667)


def test_file_names_are_short_and_stay_the_same_when_labels_change(tmp_path):
    pytest.importorskip("matplotlib")
    storage, out = tmp_path / ".benchmarks", tmp_path / "BENCHMARKS.md"
    folder = tmp_path / "benchmarks" / "plots"
    long_cell = cell(f"{LONG_MODEL}-server", mode="server", requests_per_s=2.0, **CDF)
    save_run(storage, 1, "long", [long_cell, cell(requests_per_s=1.0, **CDF)], gpus=["NVIDIA H200"] * 2)
    write_report(storage, out)
    before = sorted(path.name for path in folder.iterdir())
    assert before and max(len(name) for name in before) <= plot_names.NAME_MAX
    other_workload = cell("gemma-270m-server", requests_per_s=1.0, dataset={"path": "data/other.jsonl"}, **CDF)
    save_run(storage, 2, "b", [other_workload], gpus=["NVIDIA H200"] * 2)
    write_report(storage, out)  # now two workloads on the machine: every label gains its workload
    assert set(before) < {path.name for path in folder.iterdir()}
    assert "[batch_5k]" in out.read_text()
    assert plot_names.slug(LONG_MODEL) == plot_names.slug(LONG_MODEL) != plot_names.slug(LONG_MODEL + "x")


def test_two_plots_that_would_share_a_name_both_get_one_of_their_own(tmp_path):
    pytest.importorskip("matplotlib")
    storage, out = tmp_path / ".benchmarks", tmp_path / "BENCHMARKS.md"
    same_stem = [
        cell(requests_per_s=1.0, dataset={"path": "a/batch.jsonl", "sha256": "1" * 64}, **CDF),
        cell(requests_per_s=2.0, dataset={"path": "b/batch.jsonl", "sha256": "2" * 64}, **CDF),
    ]
    save_run(storage, 1, "twins", same_stem)
    write_report(storage, out)
    cdfs = sorted(path.name for path in (tmp_path / "benchmarks" / "plots").glob("cdf-*.png"))
    assert len(cdfs) == 2 and cdfs[0] != cdfs[1]
    assert all(len(name) <= plot_names.NAME_MAX for name in cdfs)


@given(
    machine=st.text(max_size=300),
    name=st.text(max_size=300),
    path=st.text(max_size=300),
    budget=st.none() | st.floats(0.25, 1024, allow_nan=False),
    split=st.integers(1, 16),
)
def test_any_plot_name_is_short_plain_and_the_same_every_time(machine, name, path, budget, split):
    figures = {
        "cell": name,
        "dataset": {"path": path},
        "gpu_memory_budget_gib": budget,
        "engine_args": {"tensor_parallel_size": split},
    }
    for made in (plot_names.cdf_name(machine, figures), plot_names.throughput_name(machine)):
        again = plot_names.with_digest(made, [machine, name])
        for one in (made, again):
            assert len(one) <= plot_names.NAME_MAX and re.fullmatch(r"[a-z]+-[a-z0-9-]+\.png", one)
        assert made != again
    assert plot_names.cdf_name(machine, dict(figures)) == plot_names.cdf_name(machine, figures)


def test_machine_tags():
    assert plot_names.machine_tag("1 x NVIDIA H200") == "1x-h200"
    assert plot_names.machine_tag("2 x NVIDIA H200, 1 x NVIDIA A100-SXM4-80GB") == "2x-h200-1x-a100-sxm4-80gb"
    assert plot_names.machine_tag("Intel(R) Xeon(R) Processor (2 cores, no GPU)") == "intel-xeon-2c"
    assert plot_names.machine_tag("AMD EPYC (no GPU)") == "amd-epyc"


def test_everything_the_report_generates_lies_in_one_folder_under_benchmarks(tmp_path):
    pytest.importorskip("matplotlib")
    storage, out = tmp_path / ".benchmarks", tmp_path / "BENCHMARKS.md"
    saved(storage)
    before = set(tmp_path.rglob("*"))
    write_report(storage, out)
    made = {path.relative_to(tmp_path) for path in set(tmp_path.rglob("*")) - before if path.is_file()}
    assert {path.parent for path in made} == {Path("."), Path("benchmarks/plots")}
    assert [path for path in made if path.parent == Path(".")] == [Path("BENCHMARKS.md")]


def test_the_report_removes_its_own_plots_that_it_no_longer_shows(tmp_path):
    pytest.importorskip("matplotlib")
    storage, out = tmp_path / ".benchmarks", tmp_path / "BENCHMARKS.md"
    saved(storage)
    write_report(storage, out)
    folder = tmp_path / "benchmarks" / "plots"
    stale = folder / "latency-old-cell-name-of-an-earlier-version.png"
    stale.write_bytes((folder / "throughput-test-cpu-2c.png").read_bytes())
    someone_elses = folder / "diagram.png"
    someone_elses.write_bytes(plots.PNG_SIGNATURE + b"not ours")
    write_report(storage, out)
    assert not stale.exists() and someone_elses.exists()
