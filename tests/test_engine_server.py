"""Server and endpoint modes against the real vLLM CPU server (each start takes about a minute)."""

import json
from pathlib import Path

import pytest
from procs import run_pytest_isolated, session_members

from pytest_vllmbench.config.matrix import Cell
from pytest_vllmbench.config.registry import load_registry
from pytest_vllmbench.config.settings import merge_sources, resolve
from pytest_vllmbench.engines import server
from pytest_vllmbench.engines.base import EngineStartError, SamplingOverrides
from pytest_vllmbench.engines.endpoint import EndpointEngine
from pytest_vllmbench.engines.openai_client import ClientConfig
from pytest_vllmbench.run.engine_start import engine_args, model_source
from pytest_vllmbench.workload.batch import read_batch

pytestmark = pytest.mark.engine
REPO = Path(__file__).resolve().parents[1]
DATASET = REPO / "data" / "batch_5k.jsonl"
SERVER_KEYS = [f"{m}_ms_{s}" for m in ("ttft", "tpot", "itl", "e2el") for s in ("mean", "p50", "p90", "p99")]


def embedded_cell_args(**cli):
    registry = load_registry()
    settings = resolve(merge_sources({"mode": ["server"]} | cli, {}, {}), REPO)
    cell = Cell(registry.resolve("gemma-270m"), "server", "gemma-270m")
    return model_source(cell, settings, registry), engine_args(cell, settings, registry)


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
        with pytest.raises(EngineStartError, match=r"model 'gemma3:12b' is not served at http://127.0.0.1:\d+/v1 \(served: gemma-270m\)"):
            EndpointEngine(ClientConfig(engine.base_url, "gemma3:12b"))
    finally:
        engine.close()
    assert session_members(pid) == []  # close() returned only once the server and its workers were gone


def test_server_cell_records_every_metric_and_a_killed_server_fails_only_its_cell(tmp_path):
    """Cell 1 (server) is killed mid-run: it fails clearly, keeps its figures; cell 2 (offline) still runs."""
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "test_batch.py").write_text((REPO / "benchmarks" / "test_batch.py").read_text())
    (tmp_path / "conftest.py").write_text(KILLER_CONFTEST)
    args = ["benchmarks", "-p", "no:cacheprovider", "--model=gemma-270m", "--mode=server", "--mode=offline",
            f"--dataset={DATASET}", "--limit=48", "--max-tokens=48", "--benchmark-save=killed", "--slo=ttft:60000"]
    result, leftovers = run_pytest_isolated(args, tmp_path, timeout=900)
    out = result.stdout
    assert result.returncode == 1, out[-3000:]
    assert leftovers == []
    assert "1 failed, 1 passed" in out
    assert "gemma-270m-server: the vLLM server (pid" in out and "died with code" in out
    saved = json.loads(next((tmp_path / ".benchmarks").glob("*/0001_killed.json")).read_text())
    cells = {b["extra_info"]["cell"]: b["extra_info"] for b in saved["benchmarks"]}
    assert set(cells) == {"gemma-270m-server", "gemma-270m-offline"}
    killed = cells["gemma-270m-server"]
    assert killed["n_failed"] > 0 and killed["errors"] == {"connection": killed["n_failed"]}
    assert cells["gemma-270m-offline"]["n_failed"] == 0
    assert set(SERVER_KEYS) <= set(killed) and "goodput_requests_per_s" in killed


KILLER_CONFTEST = '''
import os, re, signal, threading, time
import httpx
import pytest
from pytest_vllmbench.pytest_plugin.plugin import SESSION_KEY

RUNNING = re.compile(r"^vllm:num_requests_running\\{[^}]*\\} ([0-9.]+)", re.MULTILINE)


def streaming(base_url):
    try:
        text = httpx.get(base_url.removesuffix("/v1") + "/metrics", timeout=2.0).text
    except httpx.HTTPError:
        return False
    return any(float(n) >= 1 for n in RUNNING.findall(text))


@pytest.fixture(autouse=True)
def kill_server_mid_cell(request):
    if "server" not in request.node.name:
        yield
        return
    pool = request.config.stash[SESSION_KEY].pool
    def killer():
        while getattr(pool, "_engine", None) is None or not streaming(pool._engine.base_url):
            time.sleep(0.2)  # polling for the event: the server says requests are running
        os.kill(pool._engine.process.pid, signal.SIGKILL)  # a crash, not a clean stop
    threading.Thread(target=killer, daemon=True).start()
    yield
'''
