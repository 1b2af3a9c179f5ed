"""Real-engine cells under xdist (make test-engine): offline and server side by side, one engine per worker, on
one line that asks for n, penalties and stop, so the same session checks that both modes do the same work. The
offline cell's own end-to-end checks are in the one real-engine smoke, tests/test_engine_smoke.py."""

import json
from pathlib import Path

import pytest
from procs import run_bench_isolated

pytestmark = pytest.mark.engine
REPO = Path(__file__).resolve().parents[1]
N, MAX_TOKENS = 3, 6
PARITY_LINE = {
    "model": "gemma-270m",
    "messages": [{"role": "user", "content": "Count: one, two,"}],
    "n": N,
    "presence_penalty": 0.5,
    "frequency_penalty": 0.3,
    "stop": ["never-appears-here"],
    "seed": 7,
    "temperature": 0.8,
    "max_tokens": MAX_TOKENS,
    "ignore_eos": True,
}


@pytest.mark.two_engines
def test_two_xdist_workers_run_offline_and_server_side_by_side_and_generate_the_same_tokens(tmp_path):
    (tmp_path / "one.jsonl").write_text(
        json.dumps({"custom_id": "p", "method": "POST", "url": "/v1/chat/completions", "body": PARITY_LINE}) + "\n"
    )
    args = [
        "-n",
        "2",
        "--model=gemma-270m",
        "--mode=offline",
        "--mode=server",
        "--dataset=one.jsonl",
        "--benchmark-save=parallel",
    ]
    result, leftovers = run_bench_isolated(tmp_path, args, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:]
    assert leftovers == []
    [run] = (tmp_path / ".benchmarks").glob("*/0001_parallel.json")
    cells = {b["extra_info"]["mode"]: b["extra_info"] for b in json.loads(run.read_text())["benchmarks"]}
    assert set(cells) == {"offline", "server"}
    assert {c["xdist_worker"] for c in cells.values()} == {"gw0", "gw1"}  # one engine per worker, side by side
    # two engines share the machine: each reserves half the usual KV-cache share of RAM
    assert all(c["engine_args"]["gpu_memory_utilization"] == 0.15 for c in cells.values())
    assert "gemma-270m-server" in (tmp_path / "BENCHMARKS.md").read_text()
    # n, penalties and stop: the same work offline and on the server
    assert cells["offline"]["n_failed"] == cells["server"]["n_failed"] == 0
    assert cells["offline"]["output_tokens"] == cells["server"]["output_tokens"] == N * MAX_TOKENS


def test_a_kv_cache_too_small_for_the_batch_makes_vllm_preempt_and_the_cell_says_kv_cache(tmp_path):
    """Real vLLM offline with ~24 MB of KV cache: 8 requests of ~210 prompt tokens each growing 96 more do not fit at
    once, so vLLM evicts running requests to recompute them; its in-process metrics count it."""
    args = [
        "--model=gemma-270m",
        "--mode=offline",
        f"--dataset={REPO / 'data' / 'batch_5k.jsonl'}",
        "--limit=8",
        "--max-tokens=96",
        "--ignore-eos",
        "--engine-arg=kv_cache_memory_bytes=24000000",
        "--engine-arg=max_model_len=1024",
        "--benchmark-save=kv",
    ]
    result, leftovers = run_bench_isolated(tmp_path, args, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    assert leftovers == []
    [run] = (tmp_path / ".benchmarks").glob("*/0001_kv.json")
    [cell] = [b["extra_info"] for b in json.loads(run.read_text())["benchmarks"]]
    assert cell["n_failed"] == 0 and cell["output_tokens"] == 8 * 96
    assert cell["server_metrics"]["preemptions"] >= 1
    assert cell["preempted_pct"] == 100.0 * cell["server_metrics"]["preemptions"] / 8
    assert cell["bound_by"] == "kv-cache"
    assert "kv-cache" in result.stdout  # the end-of-session summary says so
