"""What a pytest session shows around the cells: live progress while output is captured, then the summary.
Driven against the zero-work SSE stub in endpoint mode, so no engine starts."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_vllmbench.engines.server import free_port

REPO = Path(__file__).resolve().parents[1]
STUB = REPO / "benchmarks" / "scripts" / "sse_stub.py"
BENCH_TEST = (REPO / "benchmarks" / "test_batch.py").read_text()


@pytest.fixture
def stub_url():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(STUB), str(port), "12", "acme/tiny-llm"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


def run_endpoint_cell(pytester, url, *extra):
    pytester.makepyfile(test_batch=BENCH_TEST)
    return pytester.runpytest_subprocess(  # a real process: pytest's own fd capture is what is bypassed
        "-p",
        "no:cacheprovider",
        "--mode=endpoint",
        f"--endpoint={url}",
        "--model=acme/tiny-llm",
        "--limit=20",
        f"--dataset={REPO / 'data' / 'batch_5k.jsonl'}",
        "--report=BENCHMARKS.md",
        *extra,
    )


def test_progress_shows_through_capture_and_the_session_ends_with_the_summary(pytester, stub_url):
    result = run_endpoint_cell(pytester, stub_url, "--benchmark-save=run1", "--vllmbench-gate=requests_per_s:-99%")
    assert result.ret == 0, result.stdout.str()[-3000:]
    out = result.stdout.str()
    progress = [line for line in result.outlines if line.startswith("tiny-llm-endpoint: ")]
    assert progress[0].startswith("tiny-llm-endpoint: 0/20 requests")
    assert progress[-1].startswith("tiny-llm-endpoint: 20/20 requests") and "failed 0" in progress[-1]
    summary = out.split("vllmbench summary")[1]
    assert re.search(r"TTFT p50/p99 ms.*\n.*\ntiny-llm +endpoint +\d", summary)
    saved = next((pytester.path / ".benchmarks").glob("*/0001_run1.json"))
    assert f"run saved in {saved}" in summary
    assert f"report regenerated: {pytester.path / 'BENCHMARKS.md'}" in summary
    assert "gates: no baseline run for this machine" in summary
    extra = json.loads(saved.read_text())["benchmarks"][0]["extra_info"]
    assert len(extra["ttft_ms_cdf"]) == 101 and len(extra["e2el_ms_cdf"]) == 101
    assert "tok11" not in saved.read_text()  # the streamed output text is not saved


def test_a_session_that_ran_no_cell_prints_no_summary(pytester, stub_url):
    pytester.makepyfile(test_other="def test_plain():\n    assert True\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "test_other.py")
    assert result.ret == 0
    assert "vllmbench summary" not in result.stdout.str()
