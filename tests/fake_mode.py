"""A FAKE mode for tests: one file and one `register(FAKE_MODE)`, nothing in the package names it.

Its engine answers every request at once, in-process, with 4 tokens; it sweeps (a client-side mode), so it is
handed each cell's load point, which it reports back in its one figure (`timing`). With FAKE_ENGINE_LOG set, each
engine appends its starts, runs and stops to that file ("start fake-echo"), so a test can see their order."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from pytest_vllmbench.config.loads import LoadPoint
from pytest_vllmbench.config.modes import ModeSpec
from pytest_vllmbench.engines.base import Engine, EngineDefaults, EngineStartError, SamplingOverrides
from pytest_vllmbench.engines.cell_plan import CellPlan
from pytest_vllmbench.measure.metrics import RequestRecord
from pytest_vllmbench.measure.progress import CellProgress
from pytest_vllmbench.workload.batch import BatchRequest

FAKE_MODE = ModeSpec("fake-echo", flexibility=0.5, start="fake_mode:start", sweeps=True, figures=("timing",))


def start(plan: CellPlan) -> Engine:
    log_event("start", plan.cell.mode)
    return FakeEchoEngine(plan.cell.mode)


def start_out_of_memory(plan: CellPlan) -> Engine:
    """A SIMULATED engine that never starts for lack of memory (no GPU here to run out of)."""
    log_event("start", plan.cell.mode)
    raise EngineStartError("SIMULATED torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")


def log_event(event: str, mode: str) -> None:
    if path := os.environ.get("FAKE_ENGINE_LOG"):
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"{event} {mode}\n")


class FakeEchoEngine(EngineDefaults):
    load_s = 0.5
    answer_after_s = 0.0  # how long a round takes before its answers

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.last_load: LoadPoint | None = None

    def run(
        self,
        requests: Sequence[BatchRequest],
        sampling: SamplingOverrides,
        progress: CellProgress | None = None,
        load: LoadPoint | None = None,
        on_sent: Callable[[str, float], None] | None = None,
    ) -> list[RequestRecord]:
        self.last_load = load
        log_event("run", self.mode)
        time.sleep(self.answer_after_s)
        records = []
        for request in requests:
            records.append(
                RequestRecord(request.custom_id, input_tokens=20, output_tokens=4, e2el_s=0.05, ttft_s=0.01, text="{}")
            )
            if progress is not None:
                progress.finished(True, 4)
        return records

    def cell_figures(self) -> dict[str, Any]:
        point = self.last_load.label if self.last_load is not None else "none"
        return {"timing": f"FAKE: answered at once, load point {point}"}

    def describe(self) -> dict[str, Any]:
        return {"name": "fake-echo", "version": "0", "platform": "test"}

    def fault(self) -> str | None:
        return None

    def close(self) -> None:
        log_event("close", self.mode)


def start_slow(plan: CellPlan) -> Engine:
    """A FAKE engine whose rounds take a second: long enough for their CPU shares to be read."""
    log_event("start", plan.cell.mode)
    return SlowEngine(plan.cell.mode)


def start_with_busy_core(plan: CellPlan) -> Engine:
    """A slow FAKE engine with a child process that spins as long as the engine lives (its engine core at work)."""
    log_event("start", plan.cell.mode)
    return BusyCoreEngine(plan.cell.mode)


class SlowEngine(FakeEchoEngine):
    answer_after_s = 1.0


class BusyCoreEngine(SlowEngine):
    def __init__(self, mode: str) -> None:
        super().__init__(mode)
        self.core = subprocess.Popen([sys.executable, "-c", "while True: pass"])

    def process_pids(self) -> frozenset[int]:
        return frozenset({self.core.pid})

    def close(self) -> None:
        self.core.kill()
        self.core.wait()
        super().close()
