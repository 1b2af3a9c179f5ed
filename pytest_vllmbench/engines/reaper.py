"""The watch that stops a child's session when the process that started it dies without stopping it.

`python -m pytest_vllmbench.engines.reaper SID GRACE_S` waits on its stdin, a pipe only its starter holds. A byte
there means the starter stopped the session itself: the watch ends. End of file without that byte means the
starter died (SIGKILL, the OOM killer, pytest-xdist ending a worker before its engine stopped): the watch then
stops the session as `SessionProcess.stop` does, SIGTERM to its group, GRACE_S for the whole session, SIGKILL to
every member left, so nothing it ran outlives the session that started it.
"""

from __future__ import annotations

import os
import signal
import sys

from pytest_vllmbench.engines.supervisor import stop_session

DISMISS = b"x"


def watch(sid: int, grace_s: float) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only its starter's end decides; a Ctrl-C is the starter's
    if os.read(sys.stdin.fileno(), 1) == DISMISS:
        return
    stop_session(sid, grace_s, kill_wait_s=30.0)


if __name__ == "__main__":
    watch(int(sys.argv[1]), float(sys.argv[2]))
