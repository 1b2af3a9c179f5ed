"""Ctrl-C or SIGTERM during a cell's rounds: exit 2, no traceback, nothing half-made saved (issue 24)."""

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
