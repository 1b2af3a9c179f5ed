"""How a finished stream becomes a record: TTFT, ITL and tokens as vLLM's benchmark defines them."""

import json

import pytest

from pytest_vllmbench.engines.base import SamplingOverrides
from pytest_vllmbench.engines.openai_client import build_payload, record_from_stream
from pytest_vllmbench.workload.batch import BatchRequest

CHAT = BatchRequest(
    "a",
    "/v1/chat/completions",
    {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 9, "temperature": 0.0},
    1,
)
USAGE = {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}}


def stream(*chunks):
    events = [json.dumps(chunk) for chunk in chunks] + ["[DONE]"]
    return [10.0 + i for i in range(len(events))], events


def delta(**fields):
    return {"choices": [{"index": 0, "delta": fields, "finish_reason": None}]}


def test_vllm_stream_role_chunk_is_not_a_token_but_an_empty_decoded_token_is():
    stamps, events = stream(
        delta(role="assistant", content=""), delta(content="Hi"), delta(content=""), delta(content="!"), USAGE
    )
    record = record_from_stream(CHAT, 9.5, stamps, events)
    assert record.ttft_s == pytest.approx(1.5)  # the second event, not the role-only one
    assert record.itl_s == [1.0, 1.0]
    assert (record.input_tokens, record.output_tokens, record.text) == (7, 3, "Hi!")
    assert record.e2el_s == pytest.approx(3.5)  # up to the last content chunk, not the usage chunk or [DONE]
    assert record.tpot_s == pytest.approx((3.5 - 1.5) / 2)


def test_first_chunk_with_role_and_text_is_the_first_token():
    stamps, events = stream(delta(role="assistant", content="Hello"), delta(content=" you"), USAGE)
    record = record_from_stream(CHAT, 9.0, stamps, events)
    assert record.ttft_s == pytest.approx(1.0) and record.text == "Hello you"


def test_completions_stream_and_broken_chunks():
    request = BatchRequest("c", "/v1/completions", {"model": "m", "prompt": "x"}, 1)
    stamps, events = stream(
        {"choices": [{"index": 0, "text": "a"}]},
        {"choices": [{"index": 0, "text": "b", "finish_reason": "length"}]},
        USAGE,
    )
    record = record_from_stream(request, 9.0, stamps, events)
    assert record.text == "ab" and record.finish_reason == "length" and len(record.itl_s) == 1
    assert record_from_stream(CHAT, 0.0, [1.0], ["{not json"]).error == "bad_chunk"
    assert record_from_stream(CHAT, 0.0, [1.0], [json.dumps({"error": {"message": "boom"}})]).error == "stream_error"
    assert record_from_stream(CHAT, 0.0, [], []).error == "empty_stream"


def test_payload_streams_with_usage_and_the_served_name():
    payload = build_payload(CHAT, "served", SamplingOverrides(max_tokens=5, ignore_eos=True))
    assert payload["model"] == "served" and payload["stream"] is True
    assert payload["stream_options"] == {"include_usage": True}
    assert payload["max_tokens"] == 5 and "max_completion_tokens" not in payload and payload["ignore_eos"] is True
    assert CHAT.body["max_completion_tokens"] == 9  # the request itself is untouched


def closed_port():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_refused_connection_is_connection_and_an_unsendable_request_fails_alone():
    from pytest_vllmbench.engines.openai_client import ClientConfig, send_requests

    body = CHAT.body
    requests = [
        CHAT,
        BatchRequest("surrogate", CHAT.url, body | {"messages": [{"role": "user", "content": "x\ud800"}]}, 2),
        BatchRequest("nan", CHAT.url, body | {"temperature": float("nan")}, 3),
    ]
    config = ClientConfig(f"http://127.0.0.1:{closed_port()}/v1", "m", timeout_s=10.0)
    records = send_requests(requests, SamplingOverrides(), config)
    assert [(r.custom_id, r.error) for r in records] == [
        ("a", "connection"),
        ("surrogate", "invalid_request"),
        ("nan", "invalid_request"),
    ]


def test_with_n_choices_the_text_is_the_first_choices_and_usage_counts_all():
    chunks = [{"choices": [{"index": i, "delta": {"content": f"c{i}"}, "finish_reason": None}]} for i in (0, 1, 0, 1)]
    stamps, events = stream(*chunks, {"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 4}})
    record = record_from_stream(CHAT, 9.0, stamps, events)
    assert record.text == "c0c0" and record.output_tokens == 4
