"""Ctrl-C or SIGTERM during a cell's rounds: exit 2, no traceback, nothing half-made saved (issue 24)."""

import json

import pytest
from bench_project import bench_project

from tests.test_fake_pipeline import FAKE_ENGINE_CONFTEST

# The fake engine signals its own process on the STOP_AT-th call of run() (warm-up rounds included). A
# background job starts with SIGINT ignored, so the default handler is put back first.
SIGNALLING_CONFTEST = (
    FAKE_ENGINE_CONFTEST
    + """
import signal

signal.signal(signal.SIGINT, signal.default_int_handler)
_calls = []
_run = FakeEngine.run


def _signalling_run(self, requests, sampling, progress=None, load=None, on_sent=None):
    _calls.append(1)
    if len(_calls) == int(os.environ["STOP_AT"]):
        os.kill(os.getpid(), getattr(signal, os.environ["STOP_SIGNAL"]))
    return _run(self, requests, sampling, progress)


FakeEngine.run = _signalling_run
"""
)


@pytest.fixture
def signalling_engine(pytester):
    bench_project(pytester, SIGNALLING_CONFTEST)
    return pytester


@pytest.mark.parametrize(
    ("signal_name", "warmup", "stop_at"),
    [
        ("SIGINT", 0, 1),  # the first timed round
        ("SIGTERM", 1, 2),  # the first timed round after a warm-up
        ("SIGINT", 0, 2),  # round 2 of 3
    ],
)
def test_an_interrupted_cell_exits_2_without_a_traceback_and_saves_nothing(
    signalling_engine, monkeypatch, signal_name, warmup, stop_at
):
    monkeypatch.setenv("FAKE_E2EL_S", "0.01")
    monkeypatch.setenv("STOP_AT", str(stop_at))
    monkeypatch.setenv("STOP_SIGNAL", signal_name)
    result = signalling_engine.runpytest_subprocess(
        "benchmarks",
        "-p",
        "no:cacheprovider",
        "--model=gemma-270m",
        "--mode=offline",
        "--limit=2",
        "--max-tokens=4",
        "--rounds=3",
        f"--warmup={warmup}",
        "--benchmark-save=cut",
    )
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED, output[-3000:]
    assert "Traceback" not in output and "ValueError" not in output, output[-3000:]
    assert not list((signalling_engine.path / ".benchmarks").glob("*/*.json"))


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
def test_vllmbench_report_stopped_mid_way_exits_130_without_a_traceback_and_leaves_the_old_report(
    tmp_path, monkeypatch, capsys, stop
):
    import os
    import signal
    import time

    from saved_runs import cell, save_run

    from pytest_vllmbench.cli import main
    from pytest_vllmbench.results import report

    save_run(tmp_path / "s", 1, "a", [cell()])
    out = tmp_path / "R.md"
    assert main(["report", "--storage", str(tmp_path / "s"), "--out", str(out)]) == 0
    before = out.read_bytes()
    save_run(tmp_path / "s", 2, "b", [cell("gemma-270m-server")])

    def stopped_while_rendering(*args, **kwargs):
        os.kill(os.getpid(), getattr(signal, stop))
        time.sleep(5)  # the handler raises here
        raise AssertionError("the signal did not stop the report")

    monkeypatch.setattr(report, "render", stopped_while_rendering)
    # as in a shell: Ctrl-C raises, SIGTERM has no handler of anyone else's
    previous = {signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler)}
    previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        assert main(["report", "--storage", str(tmp_path / "s"), "--out", str(out)]) == 130
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the command's handler went with it
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err
    assert out.read_bytes() == before and not list(tmp_path.glob(".R.md.*"))


EXITING_CONFTEST = (
    FAKE_ENGINE_CONFTEST
    + """
import sys

_run = FakeEngine.run


def _exiting_run(self, requests, sampling, progress=None, load=None, on_sent=None):
    if self.mode == os.environ["EXIT_IN"]:
        sys.exit(15)  # what Ray's driver makes of SIGTERM: pytest reports one failed test and goes on
    return _run(self, requests, sampling, progress)


FakeEngine.run = _exiting_run
"""
)


def test_a_cell_ended_by_system_exit_in_its_first_round_fails_alone_and_the_others_are_saved(pytester, monkeypatch):
    monkeypatch.setenv("EXIT_IN", "offline")
    ret, output = _run_project(pytester, monkeypatch, EXITING_CONFTEST, "--benchmark-save=cut", "--report=none")
    assert ret == pytest.ExitCode.TESTS_FAILED, output[-3000:]
    # pytest-benchmark's error on the empty stats of the cut cell
    assert "INTERNALERROR" not in output and "ValueError" not in output, output[-3000:]
    [run] = (pytester.path / ".benchmarks").glob("*/*_cut.json")
    assert [bench["param"] for bench in json.loads(run.read_text())["benchmarks"]] == ["gemma-270m-server"]


def _run_project(pytester, monkeypatch, conftest: str, *extra):
    """A fake-engine project with `conftest`, its offline and server cells run: (exit code, all output)."""
    bench_project(pytester, conftest)
    monkeypatch.setenv("FAKE_E2EL_S", "0.01")
    result = _run_cells(pytester, *extra)
    return result.ret, result.stdout.str() + result.stderr.str()


def _run_cells(project, *extra):
    return project.runpytest_subprocess(
        "benchmarks", "-p", "no:cacheprovider", "--model=gemma-270m", "--mode=offline", "--mode=server",
        "--limit=2", "--max-tokens=4", "--warmup=0", *extra,
    )  # fmt: skip


def test_an_interrupted_session_is_not_gated_on_the_cells_it_did_not_reach(signalling_engine, monkeypatch):
    monkeypatch.setenv("FAKE_E2EL_S", "0.01")
    monkeypatch.setenv("STOP_AT", "1000")  # the baseline runs whole
    monkeypatch.setenv("STOP_SIGNAL", "SIGTERM")
    assert _run_cells(signalling_engine, "--benchmark-save=base").ret == pytest.ExitCode.OK
    monkeypatch.setenv("STOP_AT", "2")  # the server cell's round
    result = _run_cells(signalling_engine, "--benchmark-save=gated", "--vllmbench-gate=requests_per_s:-99%")
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED, output[-3000:]
    assert "gate: not run: the session was interrupted" in output and "gate failed" not in output


CUT_SAVE_CONFTEST = (
    FAKE_ENGINE_CONFTEST
    + """
import signal, time
from pytest_benchmark.storage.file import FileStorage

_save = FileStorage.save


def _cut_save(self, output_json, save):
    _save(self, output_json, save)
    newest = max(self.path.rglob("*.json"), key=lambda path: path.stat().st_mtime_ns)
    newest.write_text(newest.read_text()[:10])  # as if the write had been cut here
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)


FileStorage.save = _cut_save
"""
)


def test_sigterm_while_the_run_is_saved_leaves_no_cut_file_and_no_traceback(pytester, monkeypatch):
    ret, output = _run_project(pytester, monkeypatch, CUT_SAVE_CONFTEST, "--benchmark-save=cut")
    assert ret == pytest.ExitCode.INTERRUPTED, output[-3000:]
    assert "interrupted while the session ended" in output and "Traceback" not in output, output[-3000:]
    assert not list((pytester.path / ".benchmarks").rglob("*.json"))
    assert not list(pytester.path.rglob("*.tmp"))


def test_under_xdist_a_cell_ended_by_system_exit_in_its_first_round_fails_alone(pytester, monkeypatch):
    """A worker hands each fixture to the controller at the test's teardown, before any session end."""
    monkeypatch.setenv("EXIT_IN", "offline")
    ret, output = _run_project(
        pytester, monkeypatch, EXITING_CONFTEST, "-n", "2", "--benchmark-save=cut", "--report=none"
    )
    assert ret == pytest.ExitCode.TESTS_FAILED, output[-3000:]
    assert "ValueError" not in output and "INTERNALERROR" not in output, output[-3000:]
    [run] = (pytester.path / ".benchmarks").glob("*/*_cut.json")
    assert [bench["param"] for bench in json.loads(run.read_text())["benchmarks"]] == ["gemma-270m-server"]


def test_a_sigterm_inside_a_library_that_made_it_a_system_exit_is_an_interrupt_and_the_handler_comes_back():
    import os
    import signal
    import sys
    import time

    from pytest_vllmbench.common.sigterm import SigtermAsInterrupt, sigterm_handler_kept

    with SigtermAsInterrupt():
        ours = signal.getsignal(signal.SIGTERM)
        with pytest.raises(KeyboardInterrupt), sigterm_handler_kept():
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))  # as ray.init does for a driver
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        assert signal.getsignal(signal.SIGTERM) is ours


FAILING_QUALITY_CONFTEST = (
    FAKE_ENGINE_CONFTEST
    + """

def pytest_vllmbench_quality(cell_id, requests, records, gold):
    if cell_id.endswith("offline"):
        raise RuntimeError("the project's scorer broke")
    return None
"""
)


def test_a_cell_that_errs_after_its_timing_is_saved_as_failed_not_as_figures_of_nothing(pytester, monkeypatch):
    ret, output = _run_project(pytester, monkeypatch, FAILING_QUALITY_CONFTEST, "--benchmark-save=q", "--report=none")
    assert ret == pytest.ExitCode.TESTS_FAILED, output[-3000:]
    [run] = (pytester.path / ".benchmarks").glob("*/*_q.json")
    saved = json.loads(run.read_text())
    assert [bench["param"] for bench in saved["benchmarks"]] == ["gemma-270m-server"]  # no entry without figures
    [failed] = saved["vllmbench"]["unrun"]
    assert failed["cell"] == "gemma-270m-offline"
    assert failed["status"] == "failed: RuntimeError: the project's scorer broke"


SECOND_SERVER_ROUND_FAILS_CONFTEST = (
    FAKE_ENGINE_CONFTEST
    + """
_graded = []


def pytest_vllmbench_quality(cell_id, requests, records, gold):
    _graded.append(cell_id)
    if cell_id.endswith("server") and _graded.count(cell_id) == 2:
        raise RuntimeError("the project's scorer broke once")
    return None
"""
)


def test_an_interleaved_round_that_errs_after_its_timing_counts_in_no_figure_of_its_cell(pytester, monkeypatch):
    extra = ["--rounds=3", "--interleave", "--benchmark-save=q", "--report=none"]
    ret, output = _run_project(pytester, monkeypatch, SECOND_SERVER_ROUND_FAILS_CONFTEST, *extra)
    assert ret == pytest.ExitCode.TESTS_FAILED, output[-3000:]
    assert "rounds on other workers" not in output
    [run] = (pytester.path / ".benchmarks").glob("*/*_q.json")
    saved_run = json.loads(run.read_text())
    assert saved_run["vllmbench"]["unrun"] == []  # measured in its other rounds: not also listed as failed
    saved = {bench["param"]: bench for bench in saved_run["benchmarks"]}
    assert sorted(saved) == ["gemma-270m-offline", "gemma-270m-server"]  # no round entry without figures
    server = saved["gemma-270m-server"]
    assert len(server["extra_info"]["rounds"]) == server["stats"]["rounds"] == 2  # the figures and the times agree


def test_under_xdist_a_cell_that_errs_after_its_timing_is_saved_as_failed_not_as_figures_of_nothing(
    pytester, monkeypatch
):
    extra = ["-n", "2", "--benchmark-save=q", "--report=none"]
    ret, output = _run_project(pytester, monkeypatch, FAILING_QUALITY_CONFTEST, *extra)
    assert ret == pytest.ExitCode.TESTS_FAILED, output[-3000:]
    [run] = (pytester.path / ".benchmarks").glob("*/*_q.json")
    saved = json.loads(run.read_text())
    assert [bench["param"] for bench in saved["benchmarks"]] == ["gemma-270m-server"]
    assert [cell["cell"] for cell in saved["vllmbench"]["unrun"]] == ["gemma-270m-offline"]


SLOW_SERVER_CONFTEST = (
    FAKE_ENGINE_CONFTEST
    + """
import time
from pathlib import Path

_run = FakeEngine.run


def _slow_server_run(self, requests, sampling, progress=None, load=None, on_sent=None):
    if self.mode == "server":
        Path("server-started").write_text("")
        time.sleep(60)  # a long cell: the SIGTERM comes during it
    return _run(self, requests, sampling, progress)


FakeEngine.run = _slow_server_run
FakeEngine.close = lambda self: Path(f"closed-{self.mode}").write_text("")
"""
)


def test_under_xdist_a_sigterm_to_the_controller_alone_stops_the_workers_and_keeps_finished_cells(
    pytester, monkeypatch
):
    import signal
    import subprocess
    import sys
    import time

    bench_project(pytester, SLOW_SERVER_CONFTEST)
    args = ["benchmarks", "-p", "no:cacheprovider", "--model=gemma-270m", "--mode=offline", "--mode=server",
            "--limit=2", "--max-tokens=4", "--warmup=0", "-n", "2", "--benchmark-save=cut", "--report=none"]  # fmt: skip
    monkeypatch.setenv("FAKE_E2EL_S", "0.01")
    # xdist stops a busy worker with SIGINT, which a suite started in the background by a script inherits as ignored
    # (bash's rule for a command put in the background without job control): pytest here starts with Python's own
    # handler whatever the suite inherited, as from a terminal or CI (docs/troubleshooting.md names the other case)
    with_sigint = (
        "import signal, sys, pytest; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "sys.exit(pytest.console_main())"
    )
    process = pytester.popen([sys.executable, "-c", with_sigint, *args], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while not (pytester.path / "server-started").exists():
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()[0].decode()[-3000:]
        time.sleep(0.1)
    time.sleep(2)  # the offline cell, on the other worker, is done by now
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)  # as a CI runner's cancel or `docker stop`: the controller's pid only
    output = process.communicate(timeout=120)[0].decode()
    assert time.monotonic() - signalled < 30, output[-3000:]  # the server cell's 60 s were not waited for
    assert process.returncode == pytest.ExitCode.INTERRUPTED, output[-3000:]
    runs = list((pytester.path / ".benchmarks").glob("*/*_cut.json"))
    assert len(runs) == 1, output[-3000:]
    assert [bench["param"] for bench in json.loads(runs[0].read_text())["benchmarks"]] == ["gemma-270m-offline"]
    assert (pytester.path / "closed-server").exists(), output[-3000:]  # the worker stopped its engine itself


FULL_DISK_CONFTEST = (
    FAKE_ENGINE_CONFTEST
    + """
import errno
from pytest_benchmark.storage.file import FileStorage


def _full_disk(self, output_json, save):
    raise OSError(errno.ENOSPC, "No space left on device")


FileStorage.save = _full_disk
"""
)


def test_a_run_that_cannot_be_saved_is_one_line_and_a_failed_session_not_an_internal_error(pytester, monkeypatch):
    ret, output = _run_project(pytester, monkeypatch, FULL_DISK_CONFTEST, "--benchmark-save=full")
    assert ret == pytest.ExitCode.TESTS_FAILED, output[-3000:]
    assert "a file it writes could not be written: [Errno 28] No space left on device" in output
    assert "INTERNALERROR" not in output and "Traceback" not in output, output[-3000:]
