"""An owned child's session outlives nothing: when the process that started it dies without stopping it (SIGKILL,
the OOM killer, pytest-xdist ending a worker before its engine stopped), a watch process stops the session.
The children here are stand-ins (`sleep`, a shell that ignores SIGTERM): what is tested is the supervisor's own
handling of a dying starter, not vLLM's behaviour."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from procs import REPO, alive_after, kill_all

from pytest_vllmbench.engines.supervisor import SessionProcess

STARTER = """
import json, os, sys, time
from pathlib import Path
from pytest_vllmbench.engines.supervisor import SessionProcess
process = SessionProcess(json.loads(sys.argv[1]), Path(sys.argv[2]), **json.loads(sys.argv[4]))
forked = 0
if sys.argv[3] == "fork" and (forked := os.fork()) == 0:  # as multiprocessing's fork: every fd comes along
    time.sleep(300)
    os._exit(0)
print(process.pid, forked, flush=True)
time.sleep(300)
"""


def start_and_kill_the_starter(tmp_path: Path, command: list[str], fork: bool = False, **kwargs: float) -> int:
    """A starter process starts `command` as a SessionProcess and is then SIGKILLed: returns the child's pid.
    `fork`: the starter forks a process first that outlives it (and is killed here after the check)."""
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, json.dumps(command), str(tmp_path / "child.log"), "fork" if fork else "-",
         json.dumps(kwargs)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )  # fmt: skip
    try:
        assert starter.stdout is not None
        child, forked = map(int, starter.stdout.readline().split())
        assert psutil.pid_exists(child)
    finally:
        starter.kill()  # no atexit, no finally: the death a worker ended by xdist or the OOM killer dies
        starter.wait()
    if forked:
        request_kill_after_test.append(forked)
    return child


request_kill_after_test: list[int] = []


@pytest.fixture(autouse=True)
def _forked_processes_killed():
    yield
    kill_all([(pid, "") for pid in request_kill_after_test])
    request_kill_after_test.clear()


def test_a_starter_killed_outright_leaves_nothing_of_its_child_running(tmp_path):
    child = start_and_kill_the_starter(tmp_path, ["sleep", "300"])
    left = alive_after(child, 15.0)
    kill_all(left)
    assert left == []


def test_a_process_the_starter_forked_holding_the_watchs_pipe_does_not_keep_the_child_running(tmp_path):
    child = start_and_kill_the_starter(tmp_path, ["sleep", "300"], fork=True)
    left = alive_after(child, 15.0)
    kill_all(left)
    assert left == []


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace(tmp_path):
    child = start_and_kill_the_starter(tmp_path, ["sh", "-c", "trap '' TERM; sleep 300 & wait"], grace_s=1.0)
    time.sleep(0.5)
    assert alive_after(child, 0.0), "the session was gone before its grace"
    left = alive_after(child, 15.0)
    kill_all(left)
    assert left == []


def test_a_session_stopped_by_its_starter_dismisses_the_watch(tmp_path):
    process = SessionProcess(["sleep", "300"], tmp_path / "child.log")
    watch = psutil.Process(process._reaper.pid)
    deadline = time.monotonic() + 10
    while not watch.cmdline() and time.monotonic() < deadline:  # just forked: not yet the watch's program
        time.sleep(0.05)
    assert "pytest_vllmbench.engines.reaper" in " ".join(watch.cmdline())
    process.stop(grace_s=5.0)
    assert process._reaper.returncode == 0
    assert alive_after(process.pid, 0.0) == []
    process.stop(grace_s=5.0)  # a second stop finds nothing to do, and no watch to dismiss


def test_the_watch_is_out_of_reach_of_a_signal_to_its_starters_group(tmp_path):
    """Ctrl-C reaches the starter's whole process group; the watch must stay to do its work after that."""
    process = SessionProcess(["sleep", "300"], tmp_path / "child.log")
    try:
        watch = process._reaper.pid
        assert os.getsid(watch) == watch != os.getsid(0)
    finally:
        process.stop(grace_s=5.0)
    assert not psutil.pid_exists(watch) or psutil.Process(watch).status() == psutil.STATUS_ZOMBIE
