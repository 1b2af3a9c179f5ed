"""Records handed on in request order from the client's thread; the offline engine's chunks."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_vllmbench.engines import offline
from pytest_vllmbench.engines.base import SamplingOverrides
from pytest_vllmbench.engines.record_stream import InOrder, records_from_thread
from pytest_vllmbench.measure.metrics import RequestRecord
from pytest_vllmbench.workload.batch import BatchRequest


@given(order=st.permutations(list(range(12))))
def test_in_order_emits_by_position_whatever_the_finishing_order(order):
    emitted: list[RequestRecord] = []
    collector = InOrder(emitted.append)
    for position in order:
        collector.put(position, RequestRecord(f"r{position}"))
    assert [r.custom_id for r in emitted] == [f"r{i}" for i in range(12)]


@given(order=st.permutations(list(range(12))), lost=st.sets(st.integers(0, 11)))
def test_finishing_emits_every_position_once_with_a_stand_in_for_each_one_never_put(order, lost):
    emitted: list[RequestRecord] = []
    collector = InOrder(emitted.append)
    for position in order:
        if position not in lost:
            collector.put(position, RequestRecord(f"r{position}"))
    collector.finish(12, lambda position: RequestRecord(f"r{position}", error="missing_output"))
    assert [r.custom_id for r in emitted] == [f"r{i}" for i in range(12)]
    assert {i for i, r in enumerate(emitted) if r.error == "missing_output"} == lost


def test_records_come_from_the_loop_thread_as_they_are_emitted():
    seen_in: set[str] = set()

    async def work(emit):
        for index in range(5):
            seen_in.add(threading.current_thread().name)
            emit(RequestRecord(f"r{index}"))
            await asyncio.sleep(0)

    records = [r.custom_id for r in records_from_thread(work, None)]
    assert records == [f"r{i}" for i in range(5)] and seen_in == {"vllmbench-client"}


def test_an_error_in_the_loop_reaches_the_caller():
    async def work(emit):
        emit(RequestRecord("r0"))
        raise RuntimeError("the client broke")

    stream = records_from_thread(work, None)
    assert next(stream).custom_id == "r0"
    with pytest.raises(RuntimeError, match="the client broke"):
        next(stream)


def test_closing_the_stream_early_cancels_the_work():
    cancelled = threading.Event()

    async def work(emit):
        emit(RequestRecord("r0"))
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    stream = records_from_thread(work, None)
    next(stream)
    stream.close()  # returns once the thread is gone, well before 60 s
    assert cancelled.is_set()


class FakeLLM:
    def __init__(self):
        self.calls: list[tuple[str, int]] = []

    def _outputs(self, count):
        return [
            SimpleNamespace(
                outputs=[SimpleNamespace(text="{}", finish_reason="stop", token_ids=[1, 2])],
                prompt_token_ids=[1],
                metrics=None,
            )
            for _ in range(count)
        ]

    def chat(self, messages, params, use_tqdm=False):
        self.calls.append(("chat", len(messages)))
        return self._outputs(len(messages))

    def generate(self, prompts, params, use_tqdm=False):
        self.calls.append(("generate", len(prompts)))
        return self._outputs(len(prompts))


def test_offline_submits_chunks_and_keeps_request_order(monkeypatch):
    monkeypatch.setattr(offline, "SUBMIT_CHUNK", 3)
    monkeypatch.setattr(offline, "_sampling_params", lambda request, sampling, defaults=None: {})
    engine = object.__new__(offline.OfflineEngine)
    engine._llm = FakeLLM()
    chat = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    requests = [
        BatchRequest(
            f"r{i}",
            *(("/v1/completions", {"model": "m", "prompt": "x"}) if i % 3 == 1 else ("/v1/chat/completions", chat)),
            i + 1,
        )
        for i in range(7)
    ]
    stream = engine.run(requests, SamplingOverrides())
    assert engine._llm.calls == []  # nothing submitted before the records are asked for
    records = list(stream)
    assert [r.custom_id for r in records] == [f"r{i}" for i in range(7)]
    assert engine._llm.calls == [("chat", 2), ("generate", 1), ("chat", 2), ("generate", 1), ("chat", 1)]
