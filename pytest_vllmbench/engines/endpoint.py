"""Endpoint mode: an OpenAI-compatible server someone else runs (Ollama, SGLang, llama.cpp, vLLM)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pytest_vllmbench.client import ClientConfig, EndpointUnreachable, preflight, run_batch
from pytest_vllmbench.engines.base import EngineStartError, SamplingOverrides
from pytest_vllmbench.metrics import RequestRecord
from pytest_vllmbench.workload import BatchRequest


def normalize_base_url(url: str) -> str:
    """`http://host:11434` and `http://host:11434/v1/` both mean `http://host:11434/v1`."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


class EndpointEngine:
    mode = "endpoint"
    load_s: float | None = None  # not ours to load

    def __init__(self, client: ClientConfig) -> None:
        self._client = client
        try:
            preflight(client)
        except EndpointUnreachable as exc:
            raise EngineStartError(str(exc)) from None

    def run(self, requests: Sequence[BatchRequest], sampling: SamplingOverrides) -> list[RequestRecord]:
        return run_batch(requests, sampling, self._client)

    def describe(self) -> dict[str, Any]:
        return {"name": "openai-compatible", "version": None, "platform": "external", "url": self._client.base_url}

    def fault(self) -> str | None:
        return None

    def close(self) -> None:
        pass
