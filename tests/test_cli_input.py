"""`vllmbench` on bad input or a closed stdout: a clear message and an exit code, never a traceback or a file
written half-way."""

import subprocess
import sys

import pytest
from saved_runs import MACHINE_ID, cell, save_run

from pytest_vllmbench.cli import main


@pytest.fixture
def storage(tmp_path, monkeypatch):
    """Two saved runs under tmp_path/.benchmarks, with tmp_path as the working folder (no pyproject.toml)."""
    monkeypatch.chdir(tmp_path)
    root = tmp_path / ".benchmarks"
    save_run(root, 1, "a", [cell()])
    save_run(root, 2, "b", [cell()], when="2026-11-30T10:00:00")
    return root


@pytest.mark.parametrize("argv", [["compare", "1", "2"], ["report", "--summary"]], ids=["compare", "summary"])
def test_a_closed_stdout_ends_the_command_quietly_as_sigpipe_would(storage, argv):
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest_vllmbench.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before the command writes its first line, as `| head` ends early
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141
    assert err == ""


@pytest.mark.parametrize("kind", ["missing", "plain file"])
def test_report_refuses_a_storage_that_is_no_folder_and_writes_nothing(tmp_path, monkeypatch, capsys, kind):
    monkeypatch.chdir(tmp_path)
    if kind == "plain file":
        (tmp_path / "typo").write_text("not a folder\n")
    before = sorted(tmp_path.iterdir())
    assert main(["report", "--storage", "typo", "--out", "fresh.md"]) == 2
    err = capsys.readouterr().err
    assert "--storage typo" in err and ("does not exist" if kind == "missing" else "is not a folder") in err
    assert sorted(tmp_path.iterdir()) == before


def test_report_run_without_summary_is_a_usage_error(storage, tmp_path, capsys):
    assert main(["report", "--run", "1"]) == 2
    assert "--run goes with --summary" in capsys.readouterr().err
    assert not (tmp_path / "BENCHMARKS.md").exists()


@pytest.mark.parametrize("spec", ["bad", "9", "latest~5"])
def test_a_run_spec_naming_no_run_is_refused_before_the_report_is_rewritten(storage, tmp_path, capsys, spec):
    report = tmp_path / "BENCHMARKS.md"
    assert main(["report"]) == 0
    report.write_bytes(report.read_bytes() + b"\n")  # ours, but not what a rewrite would give
    before = (report.read_bytes(), report.stat().st_mtime_ns)
    capsys.readouterr()
    assert main(["report", "--summary", "--run", spec]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and f"{spec!r}" in captured.err and "Traceback" not in captured.err
    assert (report.read_bytes(), report.stat().st_mtime_ns) == before


@pytest.mark.parametrize(("spec", "shown"), [("1", "0001_a"), ("b", "0002_b"), ("latest~1", "0001_a")])
def test_report_summary_shows_the_run_its_spec_names(storage, capsys, spec, shown):
    assert main(["report", "--summary", "--run", spec]) == 0
    assert f"run saved in .benchmarks/{MACHINE_ID}/{shown}.json" in capsys.readouterr().out
