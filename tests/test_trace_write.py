"""A trace file that cannot be written after the measurement: the figures stay, the cell fails naming the trace."""

from pathlib import Path

from test_session_writes import ScriptedEngine

from pytest_vllmbench.config.registry import load_registry
from pytest_vllmbench.config.settings import merge_sources, resolve
from pytest_vllmbench.run.engine_slot import EngineSlot
from pytest_vllmbench.run.session import BenchSession
from pytest_vllmbench.run.verdict import measure_cell

REPO = Path(__file__).resolve().parents[1]


def test_a_trace_that_cannot_be_written_fails_the_cell_naming_the_trace_not_an_outputs_file(tmp_path):
    traces = tmp_path / "traces"
    (traces / "gemma-270m-offline.jsonl").mkdir(parents=True)  # a folder where the trace file must go
    raw = merge_sources({"model": ["gemma-270m"], "mode": ["offline"], "limit": 3, "trace_dir": str(traces)}, {}, {})
    session = BenchSession(resolve(raw, REPO), load_registry(), REPO)
    session.engine_slot = EngineSlot(lambda cell: ScriptedEngine())
    [cell] = session.cells
    verdict = measure_cell(session, cell, lambda fn: fn(), None, None)
    assert verdict.outcome is not None and (verdict.outcome.result.requests_per_s or 0) > 0
    assert verdict.failed is not None and f"--trace-dir {traces / 'gemma-270m-offline.jsonl'}" in verdict.failed
    assert "outputs file" not in verdict.failed
