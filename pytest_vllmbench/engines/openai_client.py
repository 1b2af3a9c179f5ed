"""A streaming OpenAI-compatible client for server and endpoint cells: one record per request."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

import aiohttp
import httpx
from httpx_aiohttp import HttpxAiohttpClient

from pytest_vllmbench.common.bounded_http import DeadlineExceeded, ResponseTooLarge, bounded_get
from pytest_vllmbench.common.cut import cut
from pytest_vllmbench.common.redaction import redact_text, redact_url, secret_values
from pytest_vllmbench.engines.arrivals import arrival_offsets, wait_until
from pytest_vllmbench.engines.base import SamplingOverrides
from pytest_vllmbench.measure.metrics import RequestRecord
from pytest_vllmbench.measure.progress import CellProgress
from pytest_vllmbench.workload.batch import BatchRequest


@dataclass(frozen=True)
class ClientConfig:
    base_url: str  # ends in /v1
    served_model: str
    concurrency: int | None = None
    request_rate: float | None = None
    timeout_s: float = 600.0
    api_key: str | None = None
    seed: int = 0
    on_sent: Callable[[str, float], None] | None = None  # (custom_id, perf_counter) as each request is sent: traces


SSE = "text/event-stream"
PREFLIGHT_TIMEOUT_S = 30.0  # the most GET /v1/models may take in all, shortened by --request-timeout
MAX_MODELS_BYTES = 8 * 2**20  # a model list larger than this is not an OpenAI server's
# One streamed answer is refused past these (documented kinds `too_large` and `too_many_events`): a server
# that streams without end must cost one failed request, not the machine's memory or a false passing cell.
MAX_STREAM_BYTES = 64 * 2**20  # after decompression
MAX_LINE_BYTES = 8 * 2**20  # one SSE line
MAX_STREAM_EVENTS = 262_144


class EndpointUnreachable(RuntimeError):
    """The preflight failed: nothing would be gained by sending the whole batch."""


def build_payload(request: BatchRequest, served_model: str, sampling: SamplingOverrides) -> dict[str, Any]:
    payload = dict(request.body)
    payload.pop("max_completion_tokens", None)
    payload.update(sampling.for_request(request))
    payload["model"] = served_model
    payload["stream"] = True
    payload["stream_options"] = {"include_usage": True}
    return payload


def preflight(config: ClientConfig) -> None:
    """GET /models: the server answers and serves the model, or EndpointUnreachable says why. The whole exchange
    takes at most PREFLIGHT_TIMEOUT_S (less under a shorter request timeout) and reads at most MAX_MODELS_BYTES."""
    base, params, basic = split_url(config.base_url)
    url = f"{base}/models"
    shown = redact_url(url)  # messages end up on the terminal and in saved runs
    secrets = [config.api_key, *basic.values(), *secret_values(config.base_url, {}, None)]
    deadline = min(config.timeout_s, PREFLIGHT_TIMEOUT_S)
    try:
        response = bounded_get(url, request_headers(config), params, deadline, MAX_MODELS_BYTES)
    except (httpx.HTTPError, DeadlineExceeded, ResponseTooLarge) as exc:
        raise EndpointUnreachable(
            f"cannot reach {shown} (model {cut(config.served_model)!r}): "
            f"{type(exc).__name__}: {cut(redact_text(str(exc), secrets), 200)}"
        ) from None
    if response.status_code != 200:
        raise EndpointUnreachable(
            f"{shown} answered HTTP {response.status_code}: {redact_text(response.text[:200], secrets)}"
        )
    try:
        served = [str(model["id"]) for model in json.loads(response.content)["data"]]
    except (ValueError, KeyError, TypeError, IndexError, RecursionError):
        raise EndpointUnreachable(f"{shown} did not answer with an OpenAI model list") from None
    if config.served_model not in served:
        listed = ", ".join(cut(name) for name in served[:20]) + (
            f" and {len(served) - 20} more" if len(served) > 20 else ""
        )
        raise EndpointUnreachable(
            f"model {cut(config.served_model)!r} is not served at {redact_url(config.base_url)} "
            f"(served: {listed or 'none'})"
        )


def split_url(base_url: str) -> tuple[str, list[tuple[str, str | int | float | bool | None]], dict[str, str]]:
    """`http://u:p@h/v1?api-version=1` -> (`http://h/v1`, its query pairs, Basic auth header for u:p).
    The query goes with every request; URL credentials become a header (aiohttp refuses them beside one)."""
    parts = urlsplit(base_url)
    headers = {}
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    netloc = parts.netloc.rpartition("@")[2]
    query: list[tuple[str, str | int | float | bool | None]] = list(parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")), query, headers


def request_headers(config: ClientConfig) -> dict[str, str]:
    """The API key when there is one (it wins over credentials in the URL), else the URL's credentials."""
    if config.api_key:
        return {"Authorization": f"Bearer {config.api_key}"}
    return split_url(config.base_url)[2]


def send_requests(
    requests: Sequence[BatchRequest],
    sampling: SamplingOverrides,
    config: ClientConfig,
    progress: CellProgress | None = None,
) -> list[RequestRecord]:
    """Stream every request to the server and record each one's timing and output, in the requests' order."""
    with asyncio.Runner(loop_factory=_fast_loop_factory()) as runner:
        return runner.run(_send_requests(requests, sampling, config, progress))


def _fast_loop_factory() -> Any:
    """uvloop when it is installed (vLLM depends on it): a faster transport for many concurrent streams."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _send_requests(
    requests: Sequence[BatchRequest],
    sampling: SamplingOverrides,
    config: ClientConfig,
    progress: CellProgress | None = None,
) -> list[RequestRecord]:
    in_flight = config.concurrency or len(requests) or 1
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    timeout = httpx.Timeout(config.timeout_s, connect=min(config.timeout_s, 30.0))
    concurrency_limit = asyncio.Semaphore(config.concurrency) if config.concurrency else None
    rng = random.Random(config.seed)
    # httpx's API over aiohttp's connection pool and C HTTP parser: httpcore's pool scans every
    # connection per request, which made the client the bottleneck at a few hundred streams.
    base, params, _ = split_url(config.base_url)
    async with HttpxAiohttpClient(
        base_url=base, params=params, headers=request_headers(config), limits=limits, timeout=timeout
    ) as client:
        tasks = []
        due = arrival_offsets(len(requests), config.request_rate, rng) if config.request_rate else None
        start = time.perf_counter()
        for index, request in enumerate(requests):
            if due is not None:  # Poisson arrivals, each due at a fixed time after the start
                await wait_until(start + due[index])
            content = encode_payload(build_payload(request, config.served_model, sampling))
            if content is None:  # one request that cannot be sent is one failed request, not a failed batch
                tasks.append(asyncio.create_task(_failed(request, "invalid_request")))
                if progress is not None:
                    progress.finished(False, 0)
            else:
                tasks.append(
                    asyncio.create_task(
                        _one(client, request, content, concurrency_limit, config.timeout_s, progress, config.on_sent)
                    )
                )
        return list(await asyncio.gather(*tasks))


def encode_payload(payload: dict[str, Any]) -> bytes | None:
    """Strict JSON in UTF-8 (what a server can parse), or None when the request cannot be sent at all."""
    try:
        return json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except (ValueError, TypeError, UnicodeEncodeError, RecursionError):
        return None


async def _failed(request: BatchRequest, kind: str) -> RequestRecord:
    return RequestRecord(request.custom_id, error=kind)


def _timeout_kind(exc: httpx.TimeoutException) -> str:
    """httpx-aiohttp maps every aiohttp connection error (a refused connect too) to ConnectTimeout."""
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientConnectionError) and not isinstance(cause, TimeoutError):
        return "connection"
    return "timeout"


async def _one(
    client: httpx.AsyncClient,
    request: BatchRequest,
    payload: bytes,
    concurrency_limit: asyncio.Semaphore | None,
    timeout_s: float,
    progress: CellProgress | None = None,
    on_sent: Callable[[str, float], None] | None = None,
) -> RequestRecord:
    if concurrency_limit is None:
        if on_sent is not None:
            on_sent(request.custom_id, time.perf_counter())
        record = await _stream(client, request, payload, timeout_s)
    else:
        async with concurrency_limit:
            if on_sent is not None:
                on_sent(request.custom_id, time.perf_counter())
            record = await _stream(client, request, payload, timeout_s)
    if progress is not None:  # once per finished request, never per chunk
        progress.finished(record.ok, record.output_tokens)
    return record


class _StreamRefused(Exception):
    """The answer broke a cap: its args[0] is the request's error kind."""


async def _sse_data(response: httpx.Response) -> AsyncIterator[str]:
    """The `data` of each server-sent event, read under MAX_STREAM_BYTES, MAX_LINE_BYTES and MAX_STREAM_EVENTS."""
    buffer = bytearray()
    data: list[bytes] = []
    received = events = 0
    async for piece in response.aiter_bytes():  # decoded, so a compressed stream is capped as it inflates
        received += len(piece)
        if received > MAX_STREAM_BYTES:
            raise _StreamRefused("too_large")
        buffer += piece
        start = 0
        while (end := buffer.find(b"\n", start)) >= 0:
            line = bytes(buffer[start:end]).removesuffix(b"\r")
            start = end + 1
            if line:
                field, _, value = line.partition(b":")
                if field == b"data":
                    data.append(value.removeprefix(b" "))
            elif data:
                events += 1
                if events > MAX_STREAM_EVENTS:
                    raise _StreamRefused("too_many_events")
                yield b"\n".join(data).decode("utf-8", errors="replace")
                data = []
        del buffer[:start]
        if len(buffer) > MAX_LINE_BYTES:
            raise _StreamRefused("too_large")
    if data:  # a last event without its blank line
        yield b"\n".join(data).decode("utf-8", errors="replace")


async def _stream(client: httpx.AsyncClient, request: BatchRequest, payload: bytes, timeout_s: float) -> RequestRecord:
    path = "/chat/completions" if request.is_chat else "/completions"
    stamps: list[float] = []
    events: list[str] = []
    sent = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            async with client.stream(
                "POST", path, content=payload, headers={"Content-Type": "application/json", "Accept": SSE}
            ) as response:
                if response.status_code != 200:  # its body is never read: it could be endless
                    return RequestRecord(request.custom_id, error=f"http_{response.status_code}")
                if response.headers.get("content-type", "").partition(";")[0].strip().lower() != SSE:
                    return RequestRecord(request.custom_id, error="not_sse")
                async for data in _sse_data(response):
                    stamps.append(time.perf_counter())  # the only per-chunk work while streaming
                    events.append(data)
    except _StreamRefused as exc:
        return RequestRecord(request.custom_id, error=str(exc.args[0]))
    except TimeoutError:
        return RequestRecord(request.custom_id, error="timeout")
    except httpx.TimeoutException as exc:
        return RequestRecord(request.custom_id, error=_timeout_kind(exc))
    except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError):
        return RequestRecord(request.custom_id, error="connection")
    except httpx.DecodingError:
        return RequestRecord(request.custom_id, error="bad_encoding")
    except httpx.HTTPError as exc:
        return RequestRecord(request.custom_id, error=type(exc).__name__)
    except (ValueError, TypeError, OSError) as exc:  # the transport refused this request: it alone fails
        return RequestRecord(request.custom_id, error=f"invalid_request:{type(exc).__name__}")
    return _record(request, sent, stamps, events)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def _valid_choice(choice: Any, is_chat: bool) -> bool:
    if not isinstance(choice, dict):
        return False
    if not isinstance(choice.get("finish_reason"), (str, type(None))) or not _is_count(choice.get("index", 0)):
        return False
    if not is_chat:
        return "text" not in choice or isinstance(choice["text"], str)
    delta = choice.get("delta")
    if delta is None:
        return True
    return isinstance(delta, dict) and isinstance(delta.get("content"), (str, type(None)))


def _valid_chunk(chunk: Any, is_chat: bool) -> bool:
    """The fields the record reads have the shapes OpenAI's streaming format gives them (others are not read)."""
    if not isinstance(chunk, dict):
        return False
    choices, usage = chunk.get("choices"), chunk.get("usage")
    if choices is not None and not (isinstance(choices, list) and all(_valid_choice(c, is_chat) for c in choices)):
        return False
    if usage is None:
        return True
    counts = ("prompt_tokens", "completion_tokens")
    return isinstance(usage, dict) and all(_is_count(usage[key]) for key in counts if key in usage)


def _carries_token(choice: dict[str, Any], is_chat: bool) -> bool:
    """Whether a streamed choice stands for generated output. A token may decode to no text (vLLM then sends
    `content: ""`), so an empty string counts too, except in the opening chunk that only announces the role."""
    if not is_chat:
        return "text" in choice
    delta = choice.get("delta") or {}
    if "content" not in delta or delta["content"] is None:
        return False
    return bool(delta["content"]) or "role" not in delta


def _record(request: BatchRequest, sent: float, stamps: list[float], events: list[str]) -> RequestRecord:
    """Parse the stream once it is over: which chunks carried tokens, their text, and the server's usage.
    Any chunk that is not JSON or not shaped as OpenAI's format makes the request `bad_chunk`."""
    content_stamps: list[float] = []
    parts: list[str] = []
    usage: dict[str, Any] | None = None
    finish_reason = None
    for stamp, data in zip(stamps, events, strict=True):
        if data == "[DONE]":
            continue
        try:
            chunk = json.loads(data)
        except (ValueError, RecursionError):
            return RequestRecord(request.custom_id, error="bad_chunk")
        if isinstance(chunk, dict) and chunk.get("error"):
            return RequestRecord(request.custom_id, error="stream_error")
        if not _valid_chunk(chunk, request.is_chat):
            return RequestRecord(request.custom_id, error="bad_chunk")
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or ():
            finish_reason = choice.get("finish_reason") or finish_reason
            if _carries_token(choice, request.is_chat):
                content_stamps.append(stamp)
                if choice.get("index", 0) == 0:  # with n > 1 the text is the first choice's, as offline keeps
                    parts.append(
                        ((choice.get("delta") or {}).get("content") or "") if request.is_chat else choice["text"]
                    )
    if not stamps:
        return RequestRecord(request.custom_id, error="empty_stream")
    end = content_stamps[-1] if content_stamps else stamps[-1]  # vLLM's E2EL: not the trailing usage/[DONE]
    output_tokens = (usage or {}).get("completion_tokens", len(content_stamps))
    return RequestRecord(
        custom_id=request.custom_id,
        input_tokens=(usage or {}).get("prompt_tokens", 0),
        output_tokens=output_tokens,
        e2el_s=end - sent,
        ttft_s=content_stamps[0] - sent if content_stamps else None,
        itl_s=[b - a for a, b in pairwise(content_stamps)],
        text="".join(parts),
        finish_reason=finish_reason,
        done_at=end,
    )
