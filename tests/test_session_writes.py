"""A write that fails after the measurement keeps the measurement (no engine: a scripted one)."""

import json
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


def _session_writing_outputs(tmp_path: Path, out: Path) -> BenchSession:
    raw = merge_sources({"model": ["gemma-270m"], "mode": ["offline"], "limit": 3, "write_outputs": str(out)}, {}, {})
    session = BenchSession(resolve(raw, REPO), load_registry(), REPO)
    session.engine_slot = EngineSlot(lambda plan: ScriptedEngine())
    return session


def test_an_outputs_file_this_tool_did_not_write_is_left_alone_and_the_cell_says_so(tmp_path):
    out = tmp_path / "outputs"
    out.mkdir()
    theirs = out / "gemma-270m-offline.jsonl"
    theirs.write_text('{"id": "batch_req_abc", "custom_id": "x", "response": null, "error": null}\n')
    session = _session_writing_outputs(tmp_path, out)
    [cell] = session.cells
    outcome = session.run(session.plan(cell), lambda fn: fn())
    assert theirs.read_text().startswith('{"id": "batch_req_abc"')
    assert "not written by pytest-vllmbench" in (outcome.result.outputs_error or "")
    assert outcome.result.n_requests == 3  # the measurement is kept


def test_an_outputs_file_this_tool_wrote_is_written_again(tmp_path):
    out = tmp_path / "outputs"
    for _ in range(2):
        session = _session_writing_outputs(tmp_path, out)
        [cell] = session.cells
        outcome = session.run(session.plan(cell), lambda fn: fn())
        assert outcome.result.outputs_error is None
    lines = (out / "gemma-270m-offline.jsonl").read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line)["response"]["status_code"] == 200 for line in lines)
