"""A write that fails after the measurement keeps the measurement (no engine: a scripted one)."""

from pathlib import Path

from pytest_vllmbench.config.registry import load_registry
from pytest_vllmbench.config.settings import merge_sources, resolve
from pytest_vllmbench.engines.base import EngineDefaults
from pytest_vllmbench.measure.metrics import RequestRecord
from pytest_vllmbench.run.engine_slot import EngineSlot
from pytest_vllmbench.run.session import BenchSession

REPO = Path(__file__).resolve().parents[1]


class ScriptedEngine(EngineDefaults):
    """A FAKE engine: every request succeeds at once with four output tokens."""

    load_s = 1.0

    def run(self, requests, sampling, progress=None, load=None, on_sent=None):
        return [RequestRecord(r.custom_id, 10, 4, e2el_s=0.5, ttft_s=0.1, text="{}") for r in requests]

    def describe(self):
        return {"name": "scripted", "version": "0", "platform": "test"}

    def fault(self):
        return None

    def close(self):
        pass


def test_an_outputs_file_that_cannot_be_written_keeps_the_figures(tmp_path):
    out = tmp_path / "outputs"
    (out / "gemma-270m-offline.jsonl").mkdir(parents=True)  # a folder where the file must go
    raw = merge_sources({"model": ["gemma-270m"], "mode": ["offline"], "limit": 3, "write_outputs": str(out)}, {}, {})
    session = BenchSession(resolve(raw, REPO), load_registry(), REPO)
    session.engine_slot = EngineSlot(lambda plan: ScriptedEngine())
    [cell] = session.cells
    outcome = session.run(session.plan(cell), lambda fn: fn())
    assert outcome.result.n_requests == 3 and (outcome.result.requests_per_s or 0) > 0
    assert str(out / "gemma-270m-offline.jsonl") in (outcome.result.outputs_error or "")
