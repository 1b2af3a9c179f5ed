"""The watch that stops a child's session when the process that started it dies without stopping it.

`python -m pytest_vllmbench.engines.reaper SID GRACE_S STARTER_PID` waits on its stdin, a pipe only its starter holds. A byte
there means the starter stopped the session itself: the watch ends. End of file without that byte means the
starter died (SIGKILL, the OOM killer, pytest-xdist ending a worker before its engine stopped), and so does the
watch's parent changing (a process the starter forked may hold the pipe open after it): the watch then
stops the session as `SessionProcess.stop` does, SIGTERM to its group, GRACE_S for the whole session, SIGKILL to
every member left, so nothing it ran outlives the session that started it.
"""

from __future__ import annotations

import os
import select
import signal
import sys

from pytest_vllmbench.engines.supervisor import DISMISS, stop_session

STARTER_CHECK_S = 1.0


def watch(sid: int, grace_s: float, starter: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only its starter's end decides; a Ctrl-C is the starter's
    if starter_ended(sys.stdin.fileno(), starter):
        stop_session(sid, grace_s, kill_wait_s=30.0)


def starter_ended(pipe: int, starter: int) -> bool:
    """False once the starter dismisses the watch; True at end of file, or once the starter is no longer this
    process's parent (a child it forked may still hold the pipe's write end, and keep end of file from coming)."""
    while True:
        if os.getppid() != starter:  # the starter is gone (it may have died before this process looked)
            return True
        readable, _, _ = select.select([pipe], [], [], STARTER_CHECK_S)
        if readable:
            return os.read(pipe, 1) != DISMISS


if __name__ == "__main__":
    watch(int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]))
