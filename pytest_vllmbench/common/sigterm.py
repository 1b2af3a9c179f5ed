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
    the first such signal is sent again every `resend_s` until the block ends, and a block that ends after one,
    normally or with an error, raises KeyboardInterrupt. Only Python's own handlers and the session's are taken over
    for the block: an ignored signal, or a handler someone else installed, is left as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    seen: list[int] = []
    ended = threading.Event()
    resenders: list[threading.Thread] = []

    def resend(signum: int) -> None:
        while not ended.wait(resend_s):
            os.kill(os.getpid(), signum)

    def interrupted(signum: int, frame: object) -> None:
        if ended.is_set():
            return  # a resend that crossed the end of the block
        if not seen:
            resenders.append(threading.Thread(target=resend, args=(signum,), name="vllmbench-resend", daemon=True))
            resenders[0].start()
        seen.append(signum)
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    ours = (signal.SIG_DFL, signal.default_int_handler, _raise_keyboard_interrupt)
    taken = [sig for sig, handler in previous.items() if any(handler is known for known in ours)]
    for sig in taken:
        signal.signal(sig, interrupted)
    try:
        yield
    except Exception as exc:
        if seen:  # the library swallowed the interrupt, then failed for want of what the signal stopped
            raise KeyboardInterrupt(f"signal {seen[0]}") from exc
        raise
    finally:
        _stop_resending(ended, resenders)
        for sig in taken:
            signal.signal(sig, previous[sig])  # runs any pending resend first, through `interrupted`: a no-op now
    if seen:  # the library swallowed every one and carried on
        raise KeyboardInterrupt(f"signal {seen[0]}")


def _stop_resending(ended: threading.Event, resenders: list[threading.Thread]) -> None:
    while True:
        try:
            ended.set()
            for thread in resenders:
                thread.join()
            return
        except KeyboardInterrupt:  # a resend handled before `ended` was set: finish stopping all the same
            continue
