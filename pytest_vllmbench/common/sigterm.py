"""SIGTERM as Ctrl-C: a pytest session stops the servers its fixtures started, a command cleans up what it was writing."""

from __future__ import annotations

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
