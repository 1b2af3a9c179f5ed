"""run-batch mode against a FAKE batch runner (tests/fake_run_batch.py): the batch file it gets, how its output
is read, how it is timed, and that nothing it started outlives the cell. The real runner: test_run_batch_engine.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from procs import session_members

from pytest_vllmbench.engines import run_batch
from pytest_vllmbench.engines.base import EngineStartError, SamplingOverrides
from pytest_vllmbench.engines.vllm_cli import log_report
from pytest_vllmbench.results.summary import latency_pair
from pytest_vllmbench.workload.batch import BatchRequest
from pytest_vllmbench.workload.batch_line import CHAT_URL, COMPLETIONS_URL

FAKE_RUNNER = Path(__file__).with_name("fake_run_batch.py")


def chat(custom_id: str, content: str = "hi", **body) -> BatchRequest:
    return BatchRequest(
        custom_id, CHAT_URL, {"model": "m", "messages": [{"role": "user", "content": content}], **body}, 1
    )


def fake_command(*flags: str):
    def command(model, served_name, input_path, output_path, engine_args):
        return [sys.executable, str(FAKE_RUNNER), "-i", str(input_path), "-o", str(output_path), *flags]

    return command


def engine(tmp_path: Path, *flags: str) -> run_batch.RunBatchEngine:
    return run_batch.RunBatchEngine(
        "model-dir", "gemma-270m", {}, command=fake_command(*flags), stop_grace_s=1.0, work_dir=tmp_path
    )


def output_line(custom_id: str, status: int = 200, completion_tokens: int = 3) -> str:
    body = (
        None
        if status != 200
        else {
            "choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": completion_tokens},
        }
    )
    return json.dumps(
        {
            "id": "x",
            "custom_id": custom_id,
            "response": {"status_code": status, "body": body},
            "error": None if status == 200 else {"message": "no"},
        }
    )


def test_the_batch_file_carries_the_overrides_and_the_served_name_and_is_not_streamed(tmp_path):
    path = tmp_path / "in.jsonl"
    run_batch.write_batch_input(
        path,
        [chat("a", max_completion_tokens=50, temperature=0.5, stream=True)],
        "gemma-270m",
        SamplingOverrides(max_tokens=8, ignore_eos=True),
    )
    [line] = [json.loads(text) for text in path.read_text().splitlines()]
    assert line["custom_id"] == "a" and line["url"] == CHAT_URL and line["method"] == "POST"
    body = line["body"]
    assert body["model"] == "gemma-270m" and body["max_tokens"] == 8 and body["ignore_eos"] is True
    assert body["temperature"] == 0.5 and "max_completion_tokens" not in body
    assert "stream" not in body and "stream_options" not in body


def test_completions_lines_are_not_given_to_the_runner_which_would_refuse_the_whole_file(tmp_path):
    path = tmp_path / "in.jsonl"
    completion = BatchRequest("c", COMPLETIONS_URL, {"model": "m", "prompt": "Hi"}, 2)
    unsent = run_batch.write_batch_input(path, [chat("a"), completion], "gemma-270m", SamplingOverrides())
    assert unsent == {"c": "unsupported_endpoint"}
    assert [json.loads(text)["custom_id"] for text in path.read_text().splitlines()] == ["a"]
    (tmp_path / "out.jsonl").write_text(output_line("a") + "\n")
    records = run_batch.parse_output(tmp_path / "out.jsonl", [chat("a"), completion], unsent)
    assert [r.error for r in records] == [None, "unsupported_endpoint"]


def test_output_lines_become_records_in_the_requests_order(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text("\n".join([output_line("c", 400), output_line("a", completion_tokens=5)]) + "\n\n")
    records = run_batch.parse_output(path, [chat("a"), chat("b"), chat("c")])
    assert [(r.custom_id, r.error) for r in records] == [("a", None), ("b", "missing_output"), ("c", "http_400")]
    assert (records[0].input_tokens, records[0].output_tokens, records[0].text) == (7, 5, "ok")
    assert records[0].e2el_s is None and records[0].ttft_s is None  # the runner gives no timestamps


@pytest.mark.parametrize("content, where", [("not json", ":2:"), ('{"custom_id": 3}', ":2:"), ("[]", ":2:")])
def test_a_bad_output_line_is_named_by_file_and_line(tmp_path, content, where):
    path = tmp_path / "out.jsonl"
    path.write_text(output_line("a") + "\n" + content + "\n")
    with pytest.raises(run_batch.RunBatchOutputError, match=f"out.jsonl{where}"):
        run_batch.parse_output(path, [chat("a")])


def test_no_output_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(run_batch.RunBatchOutputError, match="wrote no output file"):
        run_batch.parse_output(tmp_path / "absent.jsonl", [chat("a")])


@given(st.lists(st.sampled_from([200, 400, None]), min_size=1, max_size=20), st.randoms())
def test_every_request_gets_exactly_one_record_whatever_the_runner_wrote(tmp_path_factory, statuses, rng):
    path = tmp_path_factory.mktemp("out") / "out.jsonl"
    requests = [chat(f"r{n}") for n in range(len(statuses))]
    lines = [output_line(r.custom_id, s) for r, s in zip(requests, statuses, strict=True) if s is not None]
    rng.shuffle(lines)
    path.write_text("\n".join(lines))
    records = run_batch.parse_output(path, requests)
    assert [r.custom_id for r in records] == [r.custom_id for r in requests]
    expected = {200: None, 400: "http_400", None: "missing_output"}
    assert [r.error for r in records] == [expected[s] for s in statuses]
    # read as taken, in order or not: the same records
    assert [(r.custom_id, r.error) for r in run_batch.read_output(path, requests)] == [
        (r.custom_id, r.error) for r in records
    ]


def test_an_output_file_in_the_requests_order_is_read_as_the_records_are_taken(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text("\n".join([output_line("a"), output_line("c", 400)]) + "\n")
    completion = BatchRequest("skipped", COMPLETIONS_URL, {"model": "m", "prompt": "x"}, 9)
    requests = [chat("a"), completion, chat("b"), chat("c")]
    streamed = run_batch.read_output(path, requests, {"skipped": "unsupported_endpoint"})
    first = next(streamed)  # the first record is there before the file is read to its end
    assert first.custom_id == "a" and not isinstance(streamed, list)
    assert [(r.custom_id, r.error) for r in streamed] == [
        ("skipped", "unsupported_endpoint"),
        ("b", "missing_output"),
        ("c", "http_400"),
    ]


def test_a_bad_line_anywhere_is_raised_before_any_record_is_handed_on(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text(output_line("a") + "\n" + output_line("b") + "\nnot json\n")
    with pytest.raises(run_batch.RunBatchOutputError, match=r"out\.jsonl:3:"):
        run_batch.read_output(path, [chat("a"), chat("b")])


def test_a_run_times_the_batch_apart_from_start_up_and_leaves_no_process(tmp_path):
    pid_file = tmp_path / "worker.pid"
    eng = engine(tmp_path, "--load-s", "0.5", "--batch-s", "0.8", "--exit-s", "0.6", "--worker-pid-file", str(pid_file))
    produced = eng.run([chat("a"), chat("refuse", "refuse me"), chat("b")], SamplingOverrides(max_tokens=4))
    assert not isinstance(produced, list)  # read from the output file as the records are taken
    records = list(produced)
    assert [r.error for r in records] == [None, "http_400", None]
    assert json.loads(records[0].text) == {"max_tokens": 4, "model": "gemma-270m", "stream": False}
    assert records[2].input_tokens == 12 and records[2].output_tokens == 4
    assert 0.5 <= eng.load_s < eng.load_s + eng.batch_wall_s < eng.end_to_end_s
    # the batch is seen to start by polling the log (<= 50 ms late) and ends at the output file's mtime (a clock tick)
    assert 0.7 <= eng.batch_wall_s < 0.8 + 1.0  # the runner's own start-up and exit are not in it
    assert eng.exit_s >= 0.5
    worker = int(pid_file.read_text())
    assert not Path(f"/proc/{worker}").exists() or "Z" in Path(f"/proc/{worker}/stat").read_text().split()[2]
    assert list(tmp_path.iterdir()) == [pid_file]  # the temporary batch, output and log are gone
    figures = eng.cell_figures()
    assert figures["not_measured"] == ["ttft", "tpot", "itl", "e2el"] and figures["run_batch_end_to_end_s"] > 1.9
    assert eng.fault() is None


def test_a_runner_that_dies_before_the_batch_is_an_engine_start_error_with_its_log(tmp_path):
    eng = engine(tmp_path, "--fail", "before", "--load-s", "0")
    with pytest.raises(EngineStartError, match=r"(?s)exited with code 3 before it read the batch.*not enough memory"):
        eng.run([chat("a")], SamplingOverrides())


def test_a_runner_whose_engine_core_failed_to_start_is_reported_by_the_engine_cores_error(tmp_path):
    """vLLM's front end ends the log with its own traceback ('See root cause above'), longer than the tail kept."""
    eng = engine(tmp_path, "--fail", "engine-core", "--load-s", "0")
    with pytest.raises(EngineStartError) as failed:
        eng.run([chat("a")], SamplingOverrides())
    first = str(failed.value).splitlines()[0]
    assert first.startswith(
        "vLLM's batch runner exited with code 1 before it read the batch; last error logged: ValueError: Available"
    )
    assert first.endswith(f"log {next(tmp_path.glob('vllmbench-run-batch-*/runner.log'))}, last lines:")


@pytest.mark.parametrize(
    "how, error, says",
    [
        ("after", "runner_exit", "exited with code 1 after it read the batch"),
        ("garbage", "bad_output", r"output.jsonl:1: not a batch output line"),
    ],
)
def test_a_runner_that_fails_mid_batch_fails_every_request_and_reports_a_fault(tmp_path, how, error, says):
    eng = engine(tmp_path, "--fail", how, "--load-s", "0", "--batch-s", "0", "--exit-s", "0")
    records = list(eng.run([chat("a"), chat("b")], SamplingOverrides()))
    assert [r.error for r in records] == [error, error]
    assert eng.fault() is not None and __import__("re").search(says, eng.fault())


def test_a_runner_over_its_time_limit_is_stopped_whole(tmp_path):
    pid_file = tmp_path / "worker.pid"
    eng = run_batch.RunBatchEngine(
        "m",
        "s",
        {},
        timeout_s=1.0,
        stop_grace_s=1.0,
        work_dir=tmp_path,
        command=fake_command("--load-s", "30", "--worker-pid-file", str(pid_file)),
    )
    with pytest.raises(EngineStartError, match="still running after 1 s"):
        eng.run([chat("a")], SamplingOverrides())
    worker = int(pid_file.read_text())
    assert session_members(worker) == [] or not Path(f"/proc/{worker}").exists()


def test_the_tables_say_not_measured_rather_than_leave_a_gap():
    cell = {"ttft_ms_p50": None, "e2el_ms_p50": 5.0, "e2el_ms_p99": 9.0, "not_measured": ["ttft", "tpot"]}
    assert latency_pair(cell, "ttft") == "not measured"
    assert latency_pair(cell, "e2el") == "5 / 9"
    assert latency_pair({"ttft_ms_p50": None}, "ttft") == "-"


def test_an_error_logged_long_before_the_log_ends_is_not_named_as_why_it_stopped(tmp_path):
    log = tmp_path / "server.log"
    log.write_text("ERROR ValueError: a request was refused\n" + "INFO serving\n" * 300)
    assert log_report(log).startswith(f"log {log}, last lines:\nINFO serving")
