"""Real-engine cells under xdist (make test-engine); the offline cell's own end-to-end checks are in the one
real-engine smoke, tests/test_engine_smoke.py."""

import json
from pathlib import Path

import pytest
from procs import run_pytest_isolated

pytestmark = pytest.mark.engine
REPO = Path(__file__).resolve().parents[1]


def test_two_xdist_workers_run_cells_in_parallel_into_one_saved_run(tmp_path):
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "test_batch.py").write_text((REPO / "benchmarks" / "test_batch.py").read_text())
    args = [
        "benchmarks",
        "-p",
        "no:cacheprovider",
        "-n",
        "2",
        "--model=gemma-270m",
        "--mode=offline",
        "--mode=server",
        f"--dataset={REPO / 'data' / 'batch_5k.jsonl'}",
        "--limit=4",
        "--max-tokens=8",
        "--benchmark-save=parallel",
    ]
    result, leftovers = run_pytest_isolated(args, tmp_path, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:]
    assert leftovers == []
    [run] = (tmp_path / ".benchmarks").glob("*/0001_parallel.json")
    cells = {b["extra_info"]["cell"]: b["extra_info"] for b in json.loads(run.read_text())["benchmarks"]}
    assert set(cells) == {"gemma-270m-offline", "gemma-270m-server"}
    assert {c["xdist_worker"] for c in cells.values()} == {"gw0", "gw1"}  # one engine per worker, side by side
    # two engines share the machine: each reserves half the usual KV-cache share of RAM
    assert all(c["engine_args"]["gpu_memory_utilization"] == 0.15 for c in cells.values())
    assert "gemma-270m-server" in (tmp_path / "BENCHMARKS.md").read_text()
