"""A hostile OpenAI server costs one failed request of a documented kind: never a lost cell, a hang or the
machine's memory (issue 24)."""

from __future__ import annotations

import base64
import gzip
import io
import json
import time

import pytest
from hostile_stub import HostileServer, head
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_vllmbench.common.redaction import redact_text, redact_url, secret_values
from pytest_vllmbench.engines import openai_client, sse_record
from pytest_vllmbench.engines.base import SamplingOverrides
from pytest_vllmbench.engines.openai_client import (
    ClientConfig,
    EndpointUnreachable,
    preflight,
    record_from_stream,
    send_requests,
)
from pytest_vllmbench.measure import server_metrics
from pytest_vllmbench.measure.progress import CellProgress
from pytest_vllmbench.measure.server_metrics import MetricsSampler, MetricsSource
from pytest_vllmbench.workload.batch import BatchRequest

CHAT = BatchRequest("a", "/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "x"}]}, 1)
TEXT = BatchRequest("c", "/v1/completions", {"model": "m", "prompt": "x"}, 1)
# every kind a streamed request can end with (besides ok); the docs' table lists the same
STREAM_KINDS = {"bad_chunk", "stream_error", "empty_stream", "cut_stream"}


def sse(*events: object) -> bytes:
    return b"".join(f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n".encode() for e in events)


GOOD = sse({"choices": [{"index": 0, "delta": {"content": "hi"}}]}, {"choices": [], "usage": {"completion_tokens": 1}})


@pytest.mark.parametrize(
    ("request_", "chunk"),
    [
        (CHAT, "5"),
        (CHAT, "null"),
        (CHAT, '"text"'),
        (CHAT, json.dumps({"choices": [5]})),
        (CHAT, json.dumps({"choices": 5})),
        (CHAT, json.dumps({"choices": [{"delta": {"content": 5}}]})),
        (CHAT, json.dumps({"choices": [{"delta": "x"}]})),
        (CHAT, json.dumps({"choices": [{"delta": {"content": "x"}, "finish_reason": 3}]})),
        (CHAT, json.dumps({"choices": [{"delta": {"content": "x"}, "index": "0"}]})),
        (CHAT, json.dumps({"choices": [], "usage": [1, 2]})),
        (CHAT, json.dumps({"choices": [], "usage": {"completion_tokens": "3"}})),
        (CHAT, json.dumps({"choices": [], "usage": {"prompt_tokens": -1}})),
        (CHAT, json.dumps({"choices": [], "usage": {"completion_tokens": True}})),
        (CHAT, json.dumps({"choices": [], "usage": {"completion_tokens": 2**62}})),  # three of them wrapped a sum
        (TEXT, json.dumps({"choices": [{"text": 5}]})),
        (CHAT, "[" * 100_000),
    ],
)
def test_a_malformed_chunk_is_that_requests_bad_chunk(request_, chunk):
    record = record_from_stream(
        request_, 0.0, [1.0, 2.0], [json.dumps({"choices": [{"delta": {"content": "a"}}]}), chunk]
    )
    assert record.error == "bad_chunk"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
shaped = st.fixed_dictionaries(
    {},
    optional={
        "choices": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "index": json_values,
                    "delta": st.fixed_dictionaries({}, optional={"content": json_values, "role": json_values}),
                    "text": json_values,
                    "finish_reason": json_values,
                },
            )
            | json_values,
            max_size=3,
        )
        | json_values,
        "usage": st.fixed_dictionaries({}, optional={"prompt_tokens": json_values, "completion_tokens": json_values})
        | json_values,
        "error": json_values,
    },
)
chunks = st.lists(shaped.map(json.dumps) | json_values.map(json.dumps) | st.text(max_size=20) | st.just("[DONE]"))


@settings(max_examples=300, deadline=None)
@given(events=chunks, chat=st.booleans())
def test_any_chunk_sequence_ends_ok_or_with_a_documented_kind(events, chat):
    record = record_from_stream(CHAT if chat else TEXT, 0.0, [float(i) for i in range(len(events))], events)
    assert record.error is None or record.error in STREAM_KINDS
    progress = CellProgress("cell", len(events) or 1, io.StringIO(), tty=False)
    progress.finished(record.ok, record.output_tokens)  # what the client does next must not raise either
    if record.ok:
        assert isinstance(record.output_tokens, int) and isinstance(record.text, str)


def batch(url: str, requests: list[BatchRequest], timeout_s: float = 10.0) -> list:
    config = ClientConfig(base_url=f"{url}/v1", served_model="m", timeout_s=timeout_s)
    return send_requests(requests, SamplingOverrides(), config)


def chats(count: int) -> list[BatchRequest]:
    return [BatchRequest(f"r{i}", CHAT.url, CHAT.body, i + 1) for i in range(count)]


def test_one_bad_chunk_among_twenty_requests_fails_only_that_request():
    def answer(handler):
        head(handler, "text/event-stream")
        handler.wfile.write(sse("5") if handler.server.bad.pop() else GOOD)  # type: ignore[attr-defined]

    with HostileServer(answer) as server:
        server._server.bad = [False] * 19 + [True]  # type: ignore[attr-defined]
        records = batch(server.url, chats(20))
    assert sorted(r.error or "ok" for r in records) == ["bad_chunk"] + ["ok"] * 19


def test_a_200_that_is_not_sse_is_not_sse():
    def answer(handler):
        head(handler, "application/json")
        handler.wfile.write(b'{"choices": []}')

    with HostileServer(answer) as server:
        assert batch(server.url, chats(1))[0].error == "not_sse"


def test_an_endless_stream_of_tiny_events_is_refused_not_saved_as_millions_of_tokens(monkeypatch):
    monkeypatch.setattr(sse_record, "MAX_STREAM_EVENTS", 1000)

    def answer(handler):
        head(handler, "text/event-stream")
        handler.wfile.write(sse(*[{"choices": [{"index": 0, "delta": {"content": "x"}}]}] * 5000))

    with HostileServer(answer) as server:
        assert batch(server.url, chats(1))[0].error == "too_many_events"


@pytest.mark.parametrize("newlines", [True, False])
def test_a_gzip_bomb_in_the_stream_is_refused_as_it_inflates(monkeypatch, newlines):
    monkeypatch.setattr(sse_record, "MAX_STREAM_BYTES", 2**20)
    monkeypatch.setattr(sse_record, "MAX_LINE_BYTES", 2**19)
    inflated = (b": keep-alive\n" * (2**22)) if newlines else b"\0" * (2**25)
    bomb = gzip.compress(inflated, compresslevel=9)

    def answer(handler):
        head(handler, "text/event-stream", ("Content-Encoding", "gzip"))
        handler.wfile.write(bomb)

    with HostileServer(answer) as server:
        assert batch(server.url, chats(1))[0].error == "too_large"


def trickle(handler, content_type="application/json"):
    head(handler, content_type)
    handler.wfile.write(b'{"data": [')
    for _ in range(200):
        handler.wfile.write(b" ")
        handler.wfile.flush()
        time.sleep(0.2)


def test_preflight_against_a_trickling_models_list_ends_within_the_request_timeout():
    with HostileServer(trickle) as server:
        started = time.monotonic()
        with pytest.raises(EndpointUnreachable, match="DeadlineExceeded"):
            preflight(ClientConfig(base_url=f"{server.url}/v1", served_model="m", timeout_s=1.0))
        assert time.monotonic() - started < 5.0  # one byte every 0.2 s would go on for 40 s


def test_preflight_against_a_silent_server_costs_the_request_timeout_not_30_s():
    with HostileServer(lambda handler: time.sleep(40)) as server:
        started = time.monotonic()
        with pytest.raises(EndpointUnreachable):
            preflight(ClientConfig(base_url=f"{server.url}/v1", served_model="m", timeout_s=1.0))
        assert time.monotonic() - started < 5.0


def test_preflight_reads_no_more_than_its_cap_of_a_huge_models_list(monkeypatch):
    monkeypatch.setattr(openai_client, "MAX_MODELS_BYTES", 2**20)
    bomb = gzip.compress(b'{"data": [' + b" " * 2**25 + b"]}", compresslevel=9)

    def answer(handler):
        head(handler, "application/json", ("Content-Encoding", "gzip"))
        handler.wfile.write(bomb)

    with HostileServer(answer) as server, pytest.raises(EndpointUnreachable, match="ResponseTooLarge"):
        preflight(ClientConfig(base_url=f"{server.url}/v1", served_model="m"))


def test_a_trickling_metrics_endpoint_is_given_up_after_the_scrape_timeout(monkeypatch):
    monkeypatch.setattr(server_metrics, "SCRAPE_TIMEOUT_S", 0.5)
    with HostileServer(lambda handler: trickle(handler, "text/plain")) as server:
        started = time.monotonic()
        with MetricsSampler(MetricsSource(f"{server.url}/metrics", {}), interval_s=0.1) as sampler:
            pass
        assert sampler.figures() is None and time.monotonic() - started < 3.0


def test_url_credentials_echoed_in_an_error_are_never_shown():
    def echo(handler):
        head(handler, "text/plain", status=500)
        handler.wfile.write(f"denied: {handler.headers['Authorization']}".encode())

    with HostileServer(echo) as server:
        url = server.url.replace("http://", "http://alice:s3cret-pw@") + "/v1?code=k3y-value#api_key=frag-key"
        with pytest.raises(EndpointUnreachable) as raised:
            preflight(ClientConfig(base_url=url, served_model="m"))
    message = str(raised.value)
    assert "HTTP 500" in message and "Basic <redacted>" in message
    for secret in ("alice", "s3cret-pw", base64.b64encode(b"alice:s3cret-pw").decode(), "k3y-value", "frag-key"):
        assert secret not in message


def test_key_like_query_values_userinfo_and_fragments_never_reach_a_saved_url_or_text():
    url = "https://u:pw@host/v1?code=k3y-value&api-version=2024-06-01&sig=s1g-value#api_key=frag-key"
    shown = redact_url(url)
    assert shown == "https://<redacted>@host/v1?code=<redacted>&api-version=2024-06-01&sig=<redacted>#<redacted>"
    text = redact_text(f"GET {url} failed; server said: Authorization: Basic dTpwdw== / bearer sk-abcdef")
    for secret in ("k3y-value", "s1g-value", "frag-key", "dTpwdw==", "sk-abcdef", "u:pw"):
        assert secret not in text
    assert {"k3y-value", "s1g-value", "frag-key", "pw"} <= set(secret_values(url, {}, None))


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n",  # a status that is not a number
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",  # a header over aiohttp's 8,190-byte line
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n1234567",
        b'data: {"choices": []}\n\n',  # no status line at all (HTTP/0.9)
    ],
    ids=["status", "long-header", "chunk-size", "two-lengths", "no-status-line"],
)
def test_an_answer_that_is_not_valid_http_fails_that_request_as_bad_http(raw):
    def answer(handler):
        handler.wfile.write(raw)

    with HostileServer(answer) as server:
        records = batch(server.url, chats(3))
    assert [r.error for r in records] == ["bad_http"] * 3


def test_a_stream_closed_before_its_end_is_cut_stream_not_a_short_success():
    """Two tokens, then the server hangs up: no finish_reason, usage or [DONE]. It was counted ok with 2 tokens."""
    content = sse({"choices": [{"index": 0, "delta": {"content": "hi"}}]}, {"choices": [{"delta": {"content": "!"}}]})

    def answer(handler):
        head(handler, "text/event-stream")
        handler.wfile.write(content)

    with HostileServer(answer) as server:
        assert [r.error for r in batch(server.url, chats(2))] == ["cut_stream"] * 2


@pytest.mark.parametrize(
    "end",
    [
        [{"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}],
        [{"choices": [], "usage": {"completion_tokens": 1}}],
        ["[DONE]"],
    ],
    ids=["finish_reason", "usage", "done"],
)
def test_any_one_of_a_streams_ends_makes_it_whole(end):
    events = [json.dumps({"choices": [{"index": 0, "delta": {"content": "a"}}]})]
    events += [e if isinstance(e, str) else json.dumps(e) for e in end]
    record = record_from_stream(CHAT, 0.0, [1.0, 2.0], events)
    assert record.ok and record.text == "a"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (502, b"<html>\x1b[2J\x1b]0;owned\x07 bad gateway\r\nFAKE: line</html>"),  # clear screen, window title
        (200, json.dumps({"data": [{"id": "other\r\n\x1b[31mFAKE"}]}).encode()),
    ],
    ids=["error-body", "model-ids"],
)
def test_what_a_server_says_reaches_the_terminal_without_control_characters(status, body):
    def answer(handler):
        head(handler, "text/html" if status != 200 else "application/json", status=status)
        handler.wfile.write(body)

    with HostileServer(answer) as server, pytest.raises(EndpointUnreachable) as info:
        preflight(ClientConfig(base_url=f"{server.url}/v1", served_model="m", timeout_s=5))
    message = str(info.value)
    assert "FAKE" in message and not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in message)
