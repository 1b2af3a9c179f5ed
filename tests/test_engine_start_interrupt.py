"""Ctrl-C or SIGTERM while vLLM's in-process engine starts (engines/offline.py, common/sigterm.interrupts_kept).

vLLM 0.26's `LLM(...)` catches the KeyboardInterrupt a signal raises while it waits for its engine core's handshake
(`zmq_socket_ctx` in vllm/utils/network_utils.py), then carries on: with the engine core alive it returns as if
nothing happened; with the engine core stopped by the same signal (Ctrl-C reaches the whole process group) it waits
up to 10 minutes for it. The stand-in `vllm` module below reproduces that behaviour; no engine is started.
"""

import os
import signal
import sys
import time
import types

import pytest

from pytest_vllmbench.common.sigterm import SigtermAsInterrupt, interrupts_kept
from pytest_vllmbench.engines.offline import OfflineEngine


def _swallowing_start(then_wait_s: float) -> None:
    """A signal arrives while the library waits; it swallows the KeyboardInterrupt and waits on."""
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    except KeyboardInterrupt:
        pass  # vLLM 0.26 logs "Got Keyboard Interrupt." at debug level and goes on
    time.sleep(then_wait_s)


class SwallowingLLM:
    """STAND-IN for vllm.LLM: swallows the interrupt during its start, then waits for a stopped engine core."""

    def __init__(self, model: str, **engine_args: object) -> None:
        _swallowing_start(then_wait_s=30.0)


@pytest.fixture
def swallowing_vllm(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=SwallowingLLM))


def test_a_sigterm_that_vllm_swallows_while_its_engine_starts_still_stops_the_session(swallowing_vllm):
    started = time.monotonic()
    with SigtermAsInterrupt(), pytest.raises(KeyboardInterrupt):
        OfflineEngine("stand-in", {})
    assert time.monotonic() - started < 10  # before: 35 s here, and up to VLLM_ENGINE_READY_TIMEOUT_S in vLLM


def test_a_start_that_swallowed_the_signal_and_then_returned_raises_it_at_the_end():
    with pytest.raises(KeyboardInterrupt, match="signal 15"), interrupts_kept(resend_s=60.0):
        _swallowing_start(then_wait_s=0.0)  # the engine came up anyway: the session must still stop


@pytest.fixture
def python_sigint():
    """Python's own Ctrl-C handler, also where pytest was started in the background (SIGINT ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_is_kept_too_and_the_handlers_come_back(python_sigint):
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(KeyboardInterrupt), interrupts_kept(resend_s=0.2):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt:
            pass
        time.sleep(5)
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_a_start_that_swallowed_the_signal_and_then_failed_is_an_interrupt_not_a_failed_start():
    with pytest.raises(KeyboardInterrupt) as raised, interrupts_kept(resend_s=60.0):
        _swallowing_start(then_wait_s=0.0)
        raise RuntimeError("Engine core initialization failed")  # what the stopped engine core leaves vLLM to say
    assert isinstance(raised.value.__cause__, RuntimeError)


@pytest.mark.parametrize(
    "found",
    [signal.SIG_IGN, None, lambda signum, frame: None],
    ids=["ignored, as in a background job", "installed outside Python", "someone else's handler"],
)
def test_a_handler_that_is_not_pythons_or_the_sessions_is_left_as_it_is(monkeypatch, found):
    monkeypatch.setattr(signal, "getsignal", lambda sig: found)
    installed = []
    monkeypatch.setattr(signal, "signal", lambda sig, handler: installed.append(sig))
    with interrupts_kept():
        pass
    assert installed == []
