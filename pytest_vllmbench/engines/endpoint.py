"""Endpoint mode: an OpenAI-compatible server someone else runs (Ollama, SGLang, llama.cpp, vLLM)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pytest_vllmbench.common.notices import notice
from pytest_vllmbench.common.redaction import redact_url
from pytest_vllmbench.config.loads import LoadPoint, with_load
from pytest_vllmbench.engines.base import Engine, EngineDefaults, EngineStartError, SamplingOverrides
from pytest_vllmbench.engines.cell_plan import CellPlan
from pytest_vllmbench.engines.client_processes import Sender
from pytest_vllmbench.engines.openai_client import (
    ClientConfig,
    EndpointUnreachable,
    preflight,
    request_headers,
    split_url,
)
from pytest_vllmbench.measure.metrics import RequestRecord
from pytest_vllmbench.measure.progress import CellProgress
from pytest_vllmbench.measure.server_metrics import MetricsSource
from pytest_vllmbench.workload.batch import BatchRequest


def normalize_base_url(url: str) -> str:
    """`http://host:11434` and `http://host:11434/v1/` both mean `http://host:11434/v1` (a query string stays)."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    path = path if path.endswith("/v1") else f"{path}/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def plain_http_elsewhere(url: str) -> bool:
    """An unencrypted endpoint on another machine: anyone on the way could read an API key sent there."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        return False
    host = (parts.hostname or "").strip("[]")
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def start(plan: CellPlan) -> Engine:
    settings = plan.settings
    assert settings.endpoint is not None  # settings.resolve demands it for this mode
    config = plan.client(normalize_base_url(settings.endpoint), plan.cell.requested)
    if config.api_key and plain_http_elsewhere(config.base_url) and not settings.api_key_over_http:
        notice(
            f"the API key in ${settings.api_key_env} is NOT sent to {redact_url(config.base_url)}: plain http to "
            "another machine would expose it; pass --api-key-over-http to send it anyway"
        )
        config = replace(config, api_key=None)
    return EndpointEngine(config)


class EndpointEngine(EngineDefaults):
    mode = "endpoint"
    load_s: float | None = None  # not ours to load

    def __init__(self, client: ClientConfig) -> None:
        self._client = client
        try:
            preflight(client)
        except EndpointUnreachable as exc:
            raise EngineStartError(str(exc)) from None
        self._sender = Sender(client.processes)
        try:
            self._sender.wait_ready()
        except BaseException:
            self._sender.close()
            raise

    def run(
        self,
        requests: Sequence[BatchRequest],
        sampling: SamplingOverrides,
        progress: CellProgress | None = None,
        load: LoadPoint | None = None,
        on_sent: Callable[[str, float], None] | None = None,
    ) -> Iterator[RequestRecord]:
        return self._sender.send(requests, sampling, with_load(self._client, load, on_sent), progress)

    def metrics_source(self) -> MetricsSource:
        """/metrics beside /v1, with the same credentials the client sends (none where they are withheld)."""
        base, params, _ = split_url(self._client.base_url)
        return MetricsSource(base.removesuffix("/v1") + "/metrics", request_headers(self._client), tuple(params))

    def describe(self) -> dict[str, Any]:
        return {
            "name": "openai-compatible",
            "version": None,
            "platform": "external",
            "url": redact_url(self._client.base_url),
        }

    def process_pids(self) -> frozenset[int]:
        return self._sender.pids()

    def fault(self) -> str | None:
        return None

    def close(self) -> None:
        self._sender.close()
