"""The report's own files: what `vllmbench report` finds at its report's and its plots' paths decides what it
writes, and a refusal or a failure leaves nothing half-written. The FIFO cases run the CLI in a subprocess with a
timeout: a read of a FIFO blocks forever."""

import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest
from saved_runs import cell, save_run

from pytest_vllmbench.cli import main
from pytest_vllmbench.results import report

# not importorskip: matplotlib imported at collection, before an in-process pytester run that imports its submodules
# and then drops them, would be left holding stale submodules
pytestmark = pytest.mark.skipif(
    find_spec("matplotlib") is None, reason="every case is about the plots beside the report"
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    save_run(tmp_path / ".benchmarks", 1, "a", [cell(), cell("gemma-270m-server", requests_per_s=2.5)])
    return tmp_path


def _report(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pytest_vllmbench.cli", "report", "--storage", ".benchmarks", *args]
    return subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=120, check=False)


def _plots(project: Path) -> list[str]:
    folder = project / "benchmarks" / "plots"
    return sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []


def test_a_fifo_as_the_report_is_refused_at_once_and_no_plot_is_drawn(project):
    os.mkfifo(project / "BENCHMARKS.md")
    done = _report(project)
    assert done.returncode == 2 and "BENCHMARKS.md is not a regular file; not overwritten" in done.stderr
    assert _plots(project) == []


def test_a_fifo_named_like_a_png_among_the_plots_is_neither_read_nor_deleted(project):
    (project / "benchmarks" / "plots").mkdir(parents=True)
    os.mkfifo(project / "benchmarks" / "plots" / "zz-mine.png")
    done = _report(project)
    assert done.returncode == 0, done.stderr
    assert "zz-mine.png" in _plots(project) and len(_plots(project)) > 1


def test_a_symlink_to_a_report_is_refused_and_no_plot_is_drawn(project):
    storage = str(project / ".benchmarks")
    assert main(["report", "--storage", storage, "--out", str(project / "BENCHMARKS.md")]) == 0
    before = (project / "BENCHMARKS.md").read_bytes()
    (project / "LINKED.md").symlink_to(project / "BENCHMARKS.md")
    assert main(["report", "--storage", storage, "--out", str(project / "LINKED.md")]) == 2
    assert (project / "BENCHMARKS.md").read_bytes() == before
    assert not (project / "benchmarks" / "plots-linked").exists()


def test_a_file_of_a_plots_name_that_this_tool_did_not_draw_is_not_overwritten(project, capsys):
    assert main(["report", "--storage", str(project / ".benchmarks"), "--out", str(project / "BENCHMARKS.md")]) == 0
    first = project / "benchmarks" / "plots" / _plots(project)[0]
    first.write_text("MY OWN DIAGRAM\n")
    (project / "BENCHMARKS.md").unlink()
    assert main(["report", "--storage", str(project / ".benchmarks"), "--out", str(project / "BENCHMARKS.md")]) == 2
    assert f"{first} is not a plot this tool drew" in capsys.readouterr().err
    assert first.read_text() == "MY OWN DIAGRAM\n"
    assert not (project / "BENCHMARKS.md").exists()


def test_a_report_that_fails_to_render_writes_no_plot(project, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug in a table")

    monkeypatch.setattr(report, "render", broken)
    with pytest.raises(RuntimeError, match="a bug in a table"):
        report.write_report(project / ".benchmarks", project / "BENCHMARKS.md")
    assert _plots(project) == [] and not (project / "BENCHMARKS.md").exists()
