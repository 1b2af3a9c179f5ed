import json

from pytest_vllmbench.measure.metrics import RequestRecord
from pytest_vllmbench.measure.quality import score_quality
from pytest_vllmbench.run.batch_output import write_batch_output
from pytest_vllmbench.workload.batch import BatchRequest
from pytest_vllmbench.workload.gold import load_gold

JSON_FORMAT = {"type": "json_object"}


def request(custom_id, url="/v1/chat/completions", **body):
    base = (
        {"model": "m", "messages": [{"role": "user", "content": "x"}]}
        if url.endswith("chat/completions")
        else {"model": "m", "prompt": "x"}
    )
    return BatchRequest(custom_id, url, base | body, 1)


def test_batch_output_has_one_line_per_input_in_order_with_errors(tmp_path):
    requests = [request("a"), request("b"), request("c", url="/v1/completions"), request("d")]
    records = [  # out of order, one failed, one missing
        RequestRecord("c", 3, 2, text="ok", finish_reason="stop"),
        RequestRecord("a", 5, 4, text='{"decision": "advance"}', finish_reason="length"),
        RequestRecord("b", error="timeout"),
    ]
    path = write_batch_output(tmp_path / "out" / "cell.jsonl", requests, records, "gemma3:12b")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["custom_id"] for line in lines] == ["a", "b", "c", "d"]
    a, b, c, d = lines
    assert a["error"] is None and a["response"]["status_code"] == 200
    assert a["response"]["body"]["choices"][0]["message"] == {"role": "assistant", "content": '{"decision": "advance"}'}
    assert a["response"]["body"]["usage"] == {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}
    assert a["response"]["body"]["model"] == "gemma3:12b"
    assert b["response"] is None and b["error"]["code"] == "timeout"
    assert c["response"]["body"]["object"] == "text_completion" and c["response"]["body"]["choices"][0]["text"] == "ok"
    assert d["error"]["code"] == "not_run"
    assert len({line["id"] for line in lines}) == 4
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["cell.jsonl"]  # no temp file left


def test_quality_counts_valid_json_and_gold_matches():
    requests = [
        request("a", response_format=JSON_FORMAT),
        request("b", response_format=JSON_FORMAT),
        request("c", response_format={"type": "json_schema", "json_schema": {"schema": {"required": ["decision"]}}}),
        request("d", response_format=JSON_FORMAT),
        request("e"),
    ]
    records = [
        RequestRecord("a", text='{"decision": "Advance"}'),
        RequestRecord("b", text="not json"),
        RequestRecord("c", text='{"score": 3}'),
        RequestRecord("d", error="timeout"),
        RequestRecord("e", text="hi"),
    ]
    gold = {"a": {"decision": "advance"}, "b": {"decision": "reject"}, "d": {"decision": "reject"}}
    result = score_quality(requests, records, gold)
    assert result == {
        "quality_valid_rate": 0.25,
        "quality_accuracy": round(1 / 3, 4),
        "quality_checked": 4,
        "quality_graded": 3,
    }
    assert score_quality([request("e")], [RequestRecord("e", text="hi")], None)["quality_valid_rate"] is None


def test_gold_file_sits_beside_the_batch(tmp_path):
    batch = tmp_path / "jobs.jsonl"
    assert load_gold(batch) is None
    (tmp_path / "jobs.gold.jsonl").write_text('{"custom_id": "a", "decision": "advance"}\n')
    assert load_gold(batch) == {"a": {"decision": "advance"}}
