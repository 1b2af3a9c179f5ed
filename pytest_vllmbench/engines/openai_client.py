"""A streaming OpenAI-compatible client for server and endpoint cells: one record per request."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from pytest_vllmbench.common.bounded_http import DeadlineExceeded, ResponseTooLarge, bounded_get
from pytest_vllmbench.common.cut import cut, one_line
from pytest_vllmbench.common.redaction import redact_text, redact_url, secret_values
from pytest_vllmbench.engines.arrivals import arrival_offsets, wait_until
from pytest_vllmbench.engines.base import SamplingOverrides
from pytest_vllmbench.engines.record_stream import InOrder, records_from_thread
from pytest_vllmbench.engines.sse_record import StreamRefused, record_from_stream, sse_data
from pytest_vllmbench.measure.metrics import RequestRecord
from pytest_vllmbench.measure.progress import CellProgress
from pytest_vllmbench.workload.batch import BatchRequest

if TYPE_CHECKING:
    import httpx

# httpx, aiohttp and httpx-aiohttp are imported where a request is sent: every pytest session imports this module
# (the plugin's cell plans name ClientConfig), and those three cost about half a second to import


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
    processes: int = 1  # client processes sending the requests (--client-processes); more than 1: client_processes.py


SSE = "text/event-stream"
PREFLIGHT_TIMEOUT_S = 30.0  # the most GET /v1/models may take in all, shortened by --request-timeout
MAX_MODELS_BYTES = 8 * 2**20  # a model list larger than this is not an OpenAI server's


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
    import httpx

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
            f"{type(exc).__name__}: {one_line(cut(redact_text(str(exc), secrets), 200))}"
        ) from None
    if response.status_code != 200:
        raise EndpointUnreachable(
            f"{shown} answered HTTP {response.status_code}: {one_line(redact_text(response.text[:200], secrets))}"
        )
    try:
        served = [str(model["id"]) for model in json.loads(response.content)["data"]]
    except (ValueError, KeyError, TypeError, IndexError, RecursionError):
        raise EndpointUnreachable(f"{shown} did not answer with an OpenAI model list") from None
    if config.served_model not in served:
        listed = ", ".join(one_line(cut(name)) for name in served[:20]) + (
            f" and {len(served) - 20} more" if len(served) > 20 else ""
        )
        raise EndpointUnreachable(
            f"model {one_line(cut(config.served_model))!r} is not served at {redact_url(config.base_url)} "
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


# Requests in flight when --concurrency is not given ("all"): the seed's 5K sample still goes at once, and a job
# of millions holds this many connections and parsed requests, not millions (docs/measurements.md).
MAX_IN_FLIGHT = 8192
LOOKAHEAD = 256  # requests parsed and waiting for a free slot, so a finished request is replaced at once


def send_requests(
    requests: Sequence[BatchRequest],
    sampling: SamplingOverrides,
    config: ClientConfig,
    progress: CellProgress | None = None,
) -> list[RequestRecord]:
    """Every record, in request order, as one list (for small batches and scripts; cells use stream_batch)."""
    return list(stream_batch(requests, sampling, config, progress))


def stream_batch(
    requests: Sequence[BatchRequest],
    sampling: SamplingOverrides,
    config: ClientConfig,
    progress: CellProgress | None = None,
) -> Iterator[RequestRecord]:
    """Each record in request order as soon as it and those before it are done; the requests are read from
    `requests` as slots free up, so memory holds the requests in flight, not the batch."""
    return records_from_thread(
        lambda emit: send_all(requests, sampling, config, progress, InOrder(emit).put), fast_loop_factory()
    )


def fast_loop_factory() -> Any:
    """uvloop when it is installed (vLLM depends on it): a faster transport for many concurrent streams."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


class Gate(Protocol):
    """What a request waits for before it is taken up: a client process's window into the batch."""

    async def wait(self, index: int) -> None: ...

    def open(self) -> None:
        """Let every request through: the batch has failed and ends."""
        ...


@dataclass(frozen=True)
class Schedule:
    """When each request is due: `due[i]` seconds after `start` (time.perf_counter(), one clock for every
    process of the machine), so that client processes sharing a batch keep one Poisson schedule."""

    due: Sequence[float]
    start: float


async def send_all(
    requests: Sequence[BatchRequest],
    sampling: SamplingOverrides,
    config: ClientConfig,
    progress: CellProgress | None,
    put: Callable[[int, RequestRecord], None],
    schedule: Schedule | None = None,
    gate: Gate | None = None,
) -> None:
    """Send every request and `put(position, record)` each as it finishes. Rate-limited requests follow
    `schedule`, or, without one, Poisson arrivals at `config.request_rate` from now. `gate.wait(position)` is
    awaited before a request is taken up (a client process's window into the batch)."""
    import httpx
    from httpx_aiohttp import HttpxAiohttpClient

    total = len(requests)
    in_flight = config.concurrency or min(total, MAX_IN_FLIGHT) or 1
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    timeout = httpx.Timeout(config.timeout_s, connect=min(config.timeout_s, 30.0))
    concurrency_limit = asyncio.Semaphore(in_flight) if config.concurrency or total > in_flight else None
    started_slots = asyncio.Semaphore(in_flight + LOOKAHEAD)  # tasks started and not yet finished
    failures: list[BaseException] = []

    def finished(position: int, task: asyncio.Task[RequestRecord]) -> None:
        started_slots.release()
        if task.cancelled():
            return
        if (error := task.exception()) is not None:
            failures.append(error)
            if gate is not None:
                gate.open()  # the batch has failed: a request waiting at the gate must see it
            return
        put(position, task.result())

    # httpx's API over aiohttp's connection pool and C HTTP parser: httpcore's pool scans every
    # connection per request, which made the client the bottleneck at a few hundred streams.
    base, params, _ = split_url(config.base_url)
    async with HttpxAiohttpClient(
        base_url=base, params=params, headers=request_headers(config), limits=limits, timeout=timeout
    ) as client:
        running: set[asyncio.Task[RequestRecord]] = set()
        if schedule is None and config.request_rate:
            due = arrival_offsets(total, config.request_rate, random.Random(config.seed))
            schedule = Schedule(due, time.perf_counter())
        try:
            for index, request in enumerate(requests):
                if failures:
                    break
                if gate is not None:
                    await gate.wait(index)
                    if failures:
                        break
                await started_slots.acquire()
                if schedule is not None:  # Poisson arrivals, each due at a fixed time after the start
                    await wait_until(schedule.start + schedule.due[index])
                content = encode_payload(build_payload(request, config.served_model, sampling))
                if content is None:  # one request that cannot be sent is one failed request, not a failed batch
                    started_slots.release()
                    put(index, RequestRecord(request.custom_id, error="invalid_request"))
                    if progress is not None:
                        progress.finished(False, 0)
                    continue
                task = asyncio.create_task(
                    _one(client, request, content, concurrency_limit, config.timeout_s, progress, config.on_sent)
                )
                running.add(task)
                task.add_done_callback(running.discard)
                task.add_done_callback(partial(finished, index))
            while running:
                await asyncio.wait(set(running))
        finally:
            for task in running:
                task.cancel()
    if failures:
        raise failures[0]


def encode_payload(payload: dict[str, Any]) -> bytes | None:
    """Strict JSON in UTF-8 (what a server can parse), or None when the request cannot be sent at all."""
    try:
        return json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except (ValueError, TypeError, UnicodeEncodeError, RecursionError):
        return None


def _timeout_kind(exc: httpx.TimeoutException) -> str:
    """httpx-aiohttp maps every aiohttp connection error (a refused connect too) to ConnectTimeout."""
    import aiohttp

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


async def _stream(client: httpx.AsyncClient, request: BatchRequest, payload: bytes, timeout_s: float) -> RequestRecord:
    import aiohttp
    import httpx

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
                async for data in sse_data(response):
                    stamps.append(time.perf_counter())  # the only per-chunk work while streaming
                    events.append(data)
    except StreamRefused as exc:
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
    except aiohttp.ClientResponseError:  # aiohttp's parser refused the answer; httpx-aiohttp passes it on unmapped
        return RequestRecord(request.custom_id, error="bad_http")
    except (ValueError, TypeError, OSError) as exc:  # the transport refused this request: it alone fails
        return RequestRecord(request.custom_id, error=f"invalid_request:{type(exc).__name__}")
    return record_from_stream(request, sent, stamps, events)
