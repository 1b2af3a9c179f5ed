"""Endpoint mode and the process tree of the real vLLM CPU server (make test-engine); a server killed mid-cell is
tested against the fake server in test_supervisor.py, the server cell's figures in test_engine_smoke.py."""

from pathlib import Path

import pytest
from engine_memory import TEST_SHARE_ARG
from procs import session_members

from pytest_vllmbench.config.matrix import Cell
from pytest_vllmbench.config.registry import load_registry
from pytest_vllmbench.config.settings import merge_sources, resolve
from pytest_vllmbench.engines import server
from pytest_vllmbench.engines.base import EngineStartError, SamplingOverrides
from pytest_vllmbench.engines.cell_plan import DummySources, plan_cell
from pytest_vllmbench.engines.endpoint import EndpointEngine
from pytest_vllmbench.engines.openai_client import ClientConfig
from pytest_vllmbench.workload.batch import read_batch

pytestmark = pytest.mark.engine
REPO = Path(__file__).resolve().parents[1]
DATASET = REPO / "data" / "batch_5k.jsonl"


def embedded_cell_args(**cli):
    registry = load_registry()
    settings = resolve(merge_sources({"mode": ["server"], "engine_arg": [TEST_SHARE_ARG]} | cli, {}, {}), REPO)
    cell = Cell(registry.resolve("gemma-270m"), "server", "gemma-270m")
    plan = plan_cell(cell, settings, registry, DummySources())
    return plan.model_source, plan.engine_args


def test_real_server_streams_serves_endpoint_mode_and_leaves_nothing_when_closed(tmp_path):
    """The one real-server smoke; the supervisor's own behaviour (port taken, never healthy, stragglers) is
    tested against a fake server in test_supervisor.py."""
    model, args = embedded_cell_args()
    engine = server.ServerEngine(model, "gemma-270m", args, ClientConfig("", "gemma-270m"), log_dir=tmp_path)
    try:
        requests = read_batch(DATASET, limit=3)
        records = engine.run(requests, SamplingOverrides(max_tokens=8))
        assert [r.error for r in records] == [None] * 3
        assert all(r.output_tokens <= 8 and r.input_tokens > 50 and r.ttft_s < r.e2el_s for r in records)
        assert all(len(r.itl_s) >= 1 for r in records if r.output_tokens > 2)
        assert engine.fault() is None and engine.load_s > 0
        pid = engine.process.pid
        assert len(session_members(pid)) >= 2  # the API server and its engine core
        # endpoint mode against the same running server: someone else's server, as far as it knows
        endpoint = EndpointEngine(ClientConfig(engine.base_url, "gemma-270m"))
        assert endpoint.load_s is None
        assert [r.error for r in endpoint.run(requests[:2], SamplingOverrides(max_tokens=4))] == [None, None]
        with pytest.raises(
            EngineStartError,
            match=r"model 'gemma3:12b' is not served at http://127.0.0.1:\d+/v1 \(served: gemma-270m\)",
        ):
            EndpointEngine(ClientConfig(engine.base_url, "gemma3:12b"))
    finally:
        engine.close()
    assert session_members(pid) == []  # close() returned only once the server and its workers were gone
