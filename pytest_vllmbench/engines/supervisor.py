"""Child processes stopped as a whole: stop() returns only once every process they started is gone."""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psutil

POLL_S = 0.1
DISMISS = b"x"  # the starter, to its watch (engines/reaper.py): it stopped the session itself


class EngineStopError(RuntimeError):
    """Processes of an engine outlived its stop; the message names them."""


def session_members(sid: int) -> list[int]:
    """Live (non-zombie) processes of session `sid`, found by session id, never by name."""
    import psutil

    members = []
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getsid(proc.pid) == sid:
                members.append(proc.pid)
        except (OSError, psutil.Error):  # gone between the listing and the look-up
            continue
    return members


def wait_until_gone(find: Callable[[], list[int]], timeout_s: float) -> list[int]:
    """Poll `find` until it lists nothing or the time is up; returns what is still there."""
    deadline = time.monotonic() + timeout_s
    while (left := find()) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    return left


def kill(pids: Iterable[int], sig: signal.Signals = signal.SIGKILL) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def describe(pids: Iterable[int]) -> str:
    import psutil

    shown = []
    for pid in pids:
        try:
            shown.append(f"{pid} ({' '.join(psutil.Process(pid).cmdline())[:120]})")
        except psutil.Error:
            shown.append(str(pid))
    return ", ".join(shown)


def stop_session(sid: int, grace_s: float, kill_wait_s: float) -> list[int]:
    """SIGTERM to the group, a grace period for the whole session to exit, then SIGKILL to every member left;
    returns the members still alive `kill_wait_s` after that."""
    if session_members(sid):
        _signal_group(sid, signal.SIGTERM)
        try:
            wait_until_gone(lambda: session_members(sid), grace_s)
        except KeyboardInterrupt:  # a second Ctrl-C or SIGTERM: no more grace, but nothing left running
            _signal_group(sid, signal.SIGKILL)
            kill(session_members(sid))
            raise
    if session_members(sid):
        _signal_group(sid, signal.SIGKILL)
        kill(session_members(sid))  # members that moved to a process group of their own
    return wait_until_gone(lambda: session_members(sid), kill_wait_s)


class SessionProcess:
    """One child in a session of its own; stopping it stops the whole session (its workers too, even those
    that left its process group), and returns only when none of them is left. A watch process
    (`engines/reaper.py`) stops the session if this process dies first; `atexit` covers a Python exit."""

    def __init__(
        self, command: list[str], log_path: Path, env: dict[str, str] | None = None, grace_s: float = 20.0
    ) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.popen = subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
        try:
            self._reaper = _watch_session(self.popen.pid, grace_s)
        except BaseException:  # no watch (out of processes or file descriptors, an interrupt): no child either
            stop_session(self.popen.pid, grace_s, kill_wait_s=30.0)
            self._log.close()
            raise
        atexit.register(self.stop)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def members(self) -> list[int]:
        return session_members(self.pid)

    def stop(self, grace_s: float = 20.0, kill_wait_s: float = 30.0) -> None:
        """SIGTERM to the group, a grace period for the whole session to exit, then SIGKILL to every member left.
        Raises EngineStopError naming the processes still alive after `kill_wait_s`."""
        atexit.unregister(self.stop)
        try:
            survivors = stop_session(self.pid, grace_s, kill_wait_s)
        finally:
            self._log.close()
            try:
                self.popen.wait(0 if self.popen.returncode is not None else kill_wait_s)
            except subprocess.TimeoutExpired:
                pass
        _dismiss(self._reaper)  # not before: a starter killed while it stops the session leaves it to the watch
        if survivors:
            raise EngineStopError(
                f"{len(survivors)} process(es) of pid {self.pid}'s session still alive {kill_wait_s:.0f} s after "
                f"SIGKILL: {describe(survivors)}"
            )


def _watch_session(sid: int, grace_s: float) -> subprocess.Popen[bytes]:
    """The watch holds the read end of a pipe whose write end is this process's (not inheritable by a program it
    starts, but a process it forks keeps it open): this process's death is end of file there, or, where a fork still
    holds it, the watch's parent changing."""
    return subprocess.Popen(
        [sys.executable, "-m", "pytest_vllmbench.engines.reaper", str(sid), str(grace_s), str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        start_new_session=True,  # a signal to this process's group (Ctrl-C) must not end the watch with it
    )


def _dismiss(reaper: subprocess.Popen[bytes]) -> None:
    assert reaper.stdin is not None
    if reaper.stdin.closed:  # dismissed before
        return
    try:
        reaper.stdin.write(DISMISS)
        reaper.stdin.close()
    except OSError:  # the watch is gone already
        pass
    try:
        reaper.wait(10)
    except subprocess.TimeoutExpired:
        reaper.kill()
        reaper.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_children(children: list[psutil.Process], grace_s: float = 20.0, kill_wait_s: float = 30.0) -> None:
    """Wait for processes this one started (an engine's workers) to exit after their engine shut down;
    SIGKILL those that do not, and raise EngineStopError if any is still alive after that."""
    import psutil

    try:
        _, alive = psutil.wait_procs(children, timeout=grace_s)
    except KeyboardInterrupt:  # a second Ctrl-C or SIGTERM: no more grace, but nothing left running
        kill(proc.pid for proc in children)
        raise
    kill(proc.pid for proc in alive)
    _, alive = psutil.wait_procs(alive, timeout=kill_wait_s)
    if alive:
        raise EngineStopError(
            f"{len(alive)} engine worker process(es) still alive {kill_wait_s:.0f} s after SIGKILL: "
            f"{describe(proc.pid for proc in alive)}"
        )
