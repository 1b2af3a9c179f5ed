"""Sweeps, rounds, traces and /metrics together through pytest, against the stub OpenAI server."""

import json
from pathlib import Path

import pytest
from openai_stub import StubServer

REPO = Path(__file__).resolve().parents[1]
DATASET = REPO / "data" / "batch_5k.jsonl"
TEST = "def test_batch(vllmbench_cell, benchmark):\n    vllmbench_cell.run(benchmark)\n"
METRICS = (
    '# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{engine="0"} 0.75\n'
    '# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{engine="0"} 2\n'
)


def run(pytester, stub, *args):
    pytester.makepyfile(test_batch=TEST)
    return pytester.runpytest(
        "--mode=endpoint",
        f"--endpoint=http://127.0.0.1:{stub.port}",
        "--model=served-model",
        "--limit=3",
        f"--dataset={DATASET}",
        *args,
    )


def saved_cells(pytester):
    [path] = (pytester.path / ".benchmarks").rglob("*.json")
    return {bench["extra_info"]["cell"]: bench["extra_info"] for bench in json.loads(path.read_text())["benchmarks"]}


def test_a_sweep_runs_every_point_on_one_start_with_rounds_traces_and_server_metrics(pytester):
    with StubServer(["served-model"], metrics=METRICS) as stub:
        result = run(
            pytester,
            stub,
            "--concurrency=2,1",
            "--rounds=3",
            "--warmup=1",
            "--trace-dir=traces",
            "--slo=ttft:60000",
            "--benchmark-save=sweep",
            "--report=report.md",
        )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert sum(seen["path"] == "/v1/models" for seen in stub.seen) == 1  # one engine start for both points
    assert sum(seen["body"] is not None for seen in stub.seen) == 2 * 3 * 3 + 3  # 2 points x 3 rounds, 1 warm-up
    cells = saved_cells(pytester)
    assert set(cells) == {"served-model-endpoint-c1", "served-model-endpoint-c2"}
    for concurrency in (1, 2):
        cell = cells[f"served-model-endpoint-c{concurrency}"]
        assert cell["load"] == {"concurrency": concurrency, "request_rate": None, "point": f"c{concurrency}"}
        assert cell["sweep"] == "served-model-endpoint" and cell["slo_ms"] == {"ttft": 60000.0}
        assert len(cell["rounds"]) == 3 and cell["round_stats"]["requests_per_s"]["n"] == 3
        stats = cell["round_stats"]["requests_per_s"]
        assert stats["ci95_low"] <= stats["mean"] <= stats["ci95_high"]
        assert cell["server_metrics"]["kv_cache_usage_pct_peak"] == 75.0
        assert cell["server_metrics"]["requests_waiting_mean"] == 2.0
        assert cell["trace_file"] == f"served-model-endpoint-c{concurrency}.jsonl"
    result.stdout.fnmatch_lines(["*sweep served-model-endpoint: knee at c*req/s*under ttft:60000*"])
    report = (pytester.path / "report.md").read_text()
    assert "## Load sweeps" in report and "SLOs ttft 60000 ms: knee at **c" in report and " ± " in report
    [curve] = (pytester.path / "benchmarks" / "plots-report").glob("sweep-*-served-model-endpoint-*.png")
    assert f"](benchmarks/plots-report/{curve.name})" in report


def test_a_trace_holds_timings_and_counts_but_no_prompt_or_output_text(pytester):
    with StubServer(["served-model"], words=4) as stub:
        result = run(pytester, stub, "--trace-dir=traces", "--rounds=2")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    lines = (pytester.path / "traces" / "served-model-endpoint.jsonl").read_text().splitlines()
    header, rows = json.loads(lines[0]), [json.loads(line) for line in lines[1:]]
    assert header["vllmbench_trace"] == 1 and header["cell"] == "served-model-endpoint"
    assert len(rows) == 2 * 3 and {row["round"] for row in rows} == {1, 2}
    sent_ids = [seen["body"]["messages"] for seen in stub.seen if seen["body"]]
    assert {row["custom_id"] for row in rows} == {
        json.loads(line)["custom_id"] for line in DATASET.read_text().splitlines()[:3]
    }
    for row in rows:
        assert set(row) == {
            "round",
            "custom_id",
            "send_s",
            "ttft_ms",
            "e2el_ms",
            "input_tokens",
            "output_tokens",
            "error",
        }
        assert row["output_tokens"] == 4 and row["error"] is None and 0 <= row["send_s"] < 60
        assert 0 < row["ttft_ms"] <= row["e2el_ms"]
    text = "\n".join(lines)
    assert "w0 " not in text  # the stub's output words
    assert all(message["content"][:40] not in text for messages in sent_ids for message in messages)


def test_an_endpoint_without_metrics_is_not_sampled_and_the_report_says_so(pytester):
    with StubServer(["served-model"]) as stub:
        result = run(pytester, stub, "--concurrency=1,3", "--benchmark-save=plain", "--report=report.md")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert all(cell["server_metrics"] is None for cell in saved_cells(pytester).values())
    assert "not sampled" in (pytester.path / "report.md").read_text()


@pytest.mark.parametrize("option", ["--trace-dir", "--write-outputs"])
def test_a_file_this_tool_did_not_write_is_left_alone_and_refused_before_any_request(pytester, option):
    """Found after the measurement, it cost the run its outputs; it is a usage error before any cell now."""
    (pytester.path / "out").mkdir()
    theirs = pytester.path / "out" / "served-model-endpoint.jsonl"
    theirs.write_text("someone's notes\n")
    with StubServer(["served-model"]) as stub:
        result = run(pytester, stub, f"{option}=out")
        assert not [seen for seen in stub.seen if seen["path"].endswith("completions")]
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert theirs.read_text() == "someone's notes\n"
    result.stderr.fnmatch_lines([f"*{option} *served-model-endpoint.jsonl*not written by pytest-vllmbench*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_an_unwritable_trace_folder_is_a_usage_error_before_any_request(pytester):
    (pytester.path / "blocked").write_text("a file, not a folder")
    with StubServer(["served-model"]) as stub:
        result = run(pytester, stub, "--trace-dir=blocked/traces")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--trace-dir" in result.stderr.str() and "Traceback" not in result.stderr.str()
    assert stub.seen == []
