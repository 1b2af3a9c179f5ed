"""Run a command in its own process session and find what it left running (by session id, not name)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def session_members(sid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":  # field 6 of stat: session id
            members.append(int(entry.name))
    return members


def alive_after(sid: int, grace_s: float) -> list[tuple[int, str]]:
    """Members of the session still alive after a grace period (helpers may take a moment to exit)."""
    deadline = time.monotonic() + grace_s
    while (members := session_members(sid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return [(pid, _cmdline(pid)) for pid in members]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return "?"


def kill_all(pids: list[tuple[int, str]]) -> None:
    for pid, _ in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def run_pytest_isolated(
    args: list[str], cwd: Path, timeout: float
) -> tuple[subprocess.CompletedProcess, list[tuple[int, str]]]:
    """pytest in a new session; returns its result and the pids still alive in that session afterwards."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        leftovers = alive_after(proc.pid, grace_s=10.0)
        kill_all(leftovers)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, None), leftovers


def run_bench_isolated(
    root: Path, options: list[str], timeout: float
) -> tuple[subprocess.CompletedProcess, list[tuple[int, str]]]:
    """`pytest benchmarks -p no:cacheprovider OPTIONS` in `root`, made a project holding the repository's
    benchmarks/test_batch.py, in a process session of its own (see run_pytest_isolated)."""
    (root / "benchmarks").mkdir(exist_ok=True)
    (root / "benchmarks" / "test_batch.py").write_text((REPO / "benchmarks" / "test_batch.py").read_text())
    return run_pytest_isolated(["benchmarks", "-p", "no:cacheprovider", *options], root, timeout)
