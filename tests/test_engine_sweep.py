"""A load sweep on the real vLLM CPU server: three points, one server start, rounds, traces and /metrics, and the
server cell's streamed figures (TTFT, ITL, TPOT, goodput) and live progress (moved here from the smoke of
`make test`, which loads one engine: offline)."""

import json
from pathlib import Path

import pytest
from engine_memory import TEST_SHARE_ARG
from procs import run_bench_isolated

pytestmark = pytest.mark.engine
REQUESTS = 6
SERVER_KEYS = [f"{m}_ms_{s}" for m in ("ttft", "tpot", "itl", "e2el") for s in ("mean", "p50", "p90", "p99")]
COUNTING_CONFTEST = """
import os
from pytest_vllmbench.engines import server

_init = server.ServerEngine.__init__


def counted(self, *args, **kwargs):
    with open(os.path.join(os.path.dirname(__file__), "server-starts.txt"), "a") as log:
        log.write("start\\n")
    _init(self, *args, **kwargs)


server.ServerEngine.__init__ = counted
"""


def _short_batch(path: Path) -> Path:
    """Requests of a dozen prompt tokens: the sweep's plumbing is under test, not prefill, and the 5K sample's
    ~250-token prompts took ~6 s each on one core (36 of them: 230 s of the test's 310)."""
    lines = [
        {
            "custom_id": f"short-{n}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gemma-270m", "messages": [{"role": "user", "content": f"Name colour number {n}."}]},
        }
        for n in range(REQUESTS)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_a_three_point_sweep_starts_the_server_once_and_saves_three_cells(tmp_path):
    (tmp_path / "conftest.py").write_text(COUNTING_CONFTEST)
    args = [
        "--model=gemma-270m",
        "--mode=server",
        f"--engine-arg={TEST_SHARE_ARG}",
        f"--dataset={_short_batch(tmp_path / 'short.jsonl')}",
        f"--limit={REQUESTS}",
        "--max-tokens=8",
        "--ignore-eos",
        "--concurrency=1,2,6",
        "--rounds=2",
        "--trace-dir=traces",
        "--slo=ttft:60000",
        "--benchmark-save=sweep",
        "--report=report.md",
    ]
    result, leftovers = run_bench_isolated(tmp_path, args, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:]
    assert leftovers == []
    assert (tmp_path / "server-starts.txt").read_text() == "start\n"
    saved = json.loads(next((tmp_path / ".benchmarks").glob("*/0001_sweep.json")).read_text())
    cells = {b["extra_info"]["cell"]: b["extra_info"] for b in saved["benchmarks"]}
    assert set(cells) == {f"gemma-270m-server-c{n}" for n in (1, 2, 6)}
    for n in (1, 2, 6):
        cell = cells[f"gemma-270m-server-c{n}"]
        assert cell["load"]["concurrency"] == n and cell["n_failed"] == 0 and cell["output_tokens"] == 6 * 8
        assert cell["round_stats"]["requests_per_s"]["n"] == 2
        metrics = cell["server_metrics"]  # vLLM's own /metrics, sampled while the cell ran
        assert metrics["samples"] >= 2 and metrics["requests_running_peak"] >= 1
        assert 0 < metrics["kv_cache_usage_pct_peak"] <= 100
        rows = (tmp_path / "traces" / cell["trace_file"]).read_text().splitlines()[1:]
        assert len(rows) == 2 * 6 and all(json.loads(row)["output_tokens"] == 8 for row in rows)
        # streamed figures; a 60 s TTFT SLO: every request meets it
        assert set(SERVER_KEYS) <= set(cell) and cell["goodput_requests_per_s"] == pytest.approx(cell["requests_per_s"])
        assert 0 < cell["ttft_ms_p50"] <= cell["e2el_ms_p50"] and cell["itl_ms_p50"] > 0
        progress = [line for line in result.stdout.splitlines() if line.startswith(f"gemma-270m-server-c{n}: ")]
        assert progress and progress[-1].startswith(f"gemma-270m-server-c{n}: 6/6 requests")  # per finished stream
    assert len({cell["load_s"] for cell in cells.values()}) == 1  # the same server's load time
    assert "sweep gemma-270m-server: knee at " in result.stdout
    report = (tmp_path / "report.md").read_text()
    assert "## Load sweeps" in report and "knee at **c" in report
