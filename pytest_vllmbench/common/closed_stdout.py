"""A command whose stdout reader went away early (`vllmbench compare ... | head`): told apart from any other broken
pipe, and ended quietly, as a tool that SIGPIPE stops."""

from __future__ import annotations

import contextlib
import os
import select
import sys

EXIT_CODE = 141  # 128 + SIGPIPE, what the shell shows for such a tool; 1 would read as a gate's regression


def reader_gone() -> bool:
    """Whether stdout is a pipe whose reader has gone: Linux polls such a pipe's write end as POLLERR."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & select.POLLERR for _, event in poller.poll(0))
    except (OSError, ValueError):  # no file descriptor (io.UnsupportedOperation is both)
        return False


def quiet_exit() -> int:
    """The exit code, with stdout pointed at devnull: what is still buffered would fail again at Python's exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    with contextlib.suppress(OSError, ValueError):  # a stdout with no file descriptor (io.UnsupportedOperation)
        os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_CODE
