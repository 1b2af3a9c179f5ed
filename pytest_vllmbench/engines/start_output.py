"""What an in-process engine's processes print while it starts: passed through as before, and the last lines
kept, because vLLM's engine-core process states why a start failed only on its own output (the parent just
gets 'Engine core initialization failed')."""

from __future__ import annotations

import fcntl
import os
import re
import sys
import termios
import threading
import time
from collections import deque
from types import TracebackType

from pytest_vllmbench.common.redaction import redact_text, strip_paths

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_EXCEPTION = re.compile(r"\b([A-Z]\w*(?:Error|Exception)): (\S.*)")
_RELEVANT = re.compile(r"Error|Exception|out of memory|KV cache|memory", re.IGNORECASE)
# vLLM's front-end errors that point at the engine core's: "See root cause above", "See stack trace (above) for..."
_POINTS_ABOVE = re.compile(r"root cause above|\(above\) for the root cause")
MAX_LINE = 500


class StartOutput:
    """`with StartOutput() as output: vllm.LLM(...)`: this process's fds 1 and 2 (and sys.stdout's and sys.stderr's
    when those are elsewhere), and so those of every process it starts meanwhile, write into pipes; a thread per pipe copies each chunk to where the fd pointed before
    (the terminal, pytest's capture) and keeps the last `keep` lines. On leaving, this process's own fds are
    restored; the pipes keep forwarding what the engine's processes print until the last of them exits."""

    def __init__(self, keep: int = 400) -> None:
        self._lines: deque[str] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self._pumps: list[tuple[threading.Thread, int]] = []
        self._saved: list[tuple[int, int]] = []

    def __enter__(self) -> StartOutput:
        _start_resource_tracker()  # long-lived: it must not inherit (and hold open) the pipes
        _flush()
        for fd in _output_fds():
            saved = os.dup(fd)
            read, write = os.pipe()
            os.dup2(write, fd)
            os.close(write)
            pump = threading.Thread(target=self._pump, args=(read, saved), daemon=True, name=f"vllmbench-fd{fd}")
            pump.start()
            self._pumps.append((pump, read))
            self._saved.append((fd, saved))
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        _flush()
        for fd, saved in self._saved:
            os.dup2(saved, fd)  # `saved` itself stays open: its pump forwards to it until the pipe closes

    def _pump(self, read: int, out: int) -> None:
        partial = ""
        try:
            while chunk := os.read(read, 65536):
                _write_all(out, chunk)
                text = partial + chunk.decode("utf-8", errors="replace")
                *lines, partial = re.split(r"\r\n|\r|\n", text)
                with self._lock:
                    self._lines.extend(line for line in lines if line.strip())
        finally:
            with self._lock:
                if partial.strip():
                    self._lines.append(partial)
            os.close(read)
            os.close(out)

    def lines(self, settle_s: float = 2.0) -> list[str]:
        """The kept lines, once the pipes are drained (at most `settle_s`): call it after the processes that
        wrote them have been stopped."""
        deadline = time.monotonic() + settle_s
        for pump, read in self._pumps:
            while pump.is_alive() and _pending(read) and time.monotonic() < deadline:
                time.sleep(0.02)
            pump.join(timeout=min(0.1, max(0.0, deadline - time.monotonic())))  # EOF: the pump ends at once
        with self._lock:
            return list(self._lines)


def failure_reason(lines: list[str]) -> str | None:
    """The last 'SomethingError: why' the engine's processes printed, without its log prefix, scrubbed. The
    front end's own errors that point above (vLLM's 'Engine core initialization failed. See root cause above.') are
    passed over: the root cause is the engine core's error, printed before them."""
    for line in reversed(lines):
        if (match := _EXCEPTION.search(_ANSI.sub("", line))) and not _POINTS_ABOVE.search(match[2]):
            return _scrub(f"{match[1]}: {match[2]}")
    return None


def relevant_lines(lines: list[str], limit: int = 12) -> list[str]:
    """The last `limit` distinct lines about errors or memory, scrubbed of credentials and machine paths."""
    picked: list[str] = []
    for line in reversed(lines):
        text = _scrub(_ANSI.sub("", line).strip())
        if _RELEVANT.search(text) and text not in picked:
            picked.append(text)
            if len(picked) == limit:
                break
    return picked[::-1]


def _scrub(text: str) -> str:
    return strip_paths(redact_text(text))[:MAX_LINE]


def _pending(fd: int) -> int:
    """Bytes waiting in the pipe (0 once the pump has read everything written so far)."""
    try:
        return int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"), sys.byteorder)
    except OSError:  # closed: the pump is done
        return 0


def _write_all(fd: int, data: bytes) -> None:
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError:  # nowhere to show it (closed terminal): keep reading, so the engine never blocks
        pass


def _output_fds() -> list[int]:
    """fds 1 and 2, and those sys.stdout and sys.stderr write to when they are elsewhere (pytest's capture
    files): a forked engine process keeps this process's sys.stdout object, so it writes where that does."""
    fds = [1, 2]
    for stream in (sys.stdout, sys.stderr):
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):  # an in-memory stream: nothing below it to redirect
            continue
        if fd not in fds:
            fds.append(fd)
    return fds


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass


def _start_resource_tracker() -> None:
    from multiprocessing import resource_tracker

    try:
        resource_tracker.ensure_running()
    except OSError:
        pass
