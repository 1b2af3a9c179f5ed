"""SIGTERM as Ctrl-C: a pytest session stops the servers its fixtures started, a command cleans up what it was writing."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class SigtermAsInterrupt:
    """A context manager; it installs nothing off the main thread or over a handler someone else installed."""

    def __init__(self) -> None:
        self.installed = False

    def __enter__(self) -> SigtermAsInterrupt:
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
            self.installed = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.installed and signal.getsignal(signal.SIGTERM) is _raise_keyboard_interrupt:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def sigterm_handler_kept() -> Iterator[None]:
    """Put back the SIGTERM handler that was there before the block: a library that installs its own (Ray's driver
    makes SIGTERM a SystemExit, which pytest reports as one failed test and goes on) must not take over the
    session's, which stops the engines and saves the rounds done."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handler = signal.getsignal(signal.SIGTERM)
    try:
        yield
    except SystemExit as exc:  # a SIGTERM that came inside the block, to the library's handler
        if exc.code == signal.SIGTERM and signal.getsignal(signal.SIGTERM) is not handler:
            raise KeyboardInterrupt(f"signal {signal.SIGTERM.value}") from None
        raise
    finally:
        if handler is not None and signal.getsignal(signal.SIGTERM) is not handler:
            signal.signal(signal.SIGTERM, handler)


@contextmanager
def interrupts_kept(resend_s: float = 1.0) -> Iterator[None]:
    """Ctrl-C and SIGTERM inside the block reach the caller even where a library swallows the KeyboardInterrupt they
    raise. vLLM 0.26's engine start does: it catches KeyboardInterrupt while it waits for its engine core's
    handshake, then waits up to VLLM_ENGINE_READY_TIMEOUT_S (10 min) for an engine the signal may have stopped. So
    the first such signal is sent again every `resend_s` until the block ends, and a block that ends normally after
    one raises KeyboardInterrupt. Signals the process ignores stay ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    seen: list[int] = []
    ended, sending = threading.Event(), threading.Lock()

    def resend(signum: int) -> None:
        while not ended.wait(resend_s):
            with sending:
                if not ended.is_set():
                    os.kill(os.getpid(), signum)

    def interrupted(signum: int, frame: object) -> None:
        if not seen:
            threading.Thread(target=resend, args=(signum,), name="vllmbench-resend", daemon=True).start()
        seen.append(signum)
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(sig, interrupted)
    try:
        yield
    finally:
        with sending:
            ended.set()
        for sig, handler in previous.items():
            if handler is not None and handler is not signal.SIG_IGN:
                signal.signal(sig, handler)
    if seen:  # the library swallowed every one and carried on
        raise KeyboardInterrupt(f"signal {seen[0]}")
