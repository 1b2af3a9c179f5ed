"""A FAKE mode for tests: one file and one `register(FAKE_MODE)`, nothing in the package names it.

Its engine answers every request at once, in-process, with 4 tokens; it sweeps (a client-side mode), so it is
handed each cell's load point, which it reports back in its one figure (`timing`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pytest_vllmbench.config.loads import LoadPoint
from pytest_vllmbench.config.modes import ModeSpec
from pytest_vllmbench.engines.base import Engine, EngineDefaults, SamplingOverrides
from pytest_vllmbench.engines.cell_plan import CellPlan
from pytest_vllmbench.measure.metrics import RequestRecord
from pytest_vllmbench.measure.progress import CellProgress
from pytest_vllmbench.workload.batch import BatchRequest

FAKE_MODE = ModeSpec("fake-echo", flexibility=0.5, start="fake_mode:start", sweeps=True, figures=("timing",))


def start(plan: CellPlan) -> Engine:
    return FakeEchoEngine(plan.cell.mode)


class FakeEchoEngine(EngineDefaults):
    load_s = 0.5

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
        pass
