"""The one small interface every engine implements, and what it is handed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pytest_vllmbench.metrics import RequestRecord
from pytest_vllmbench.workload import BatchRequest

DEFAULT_MAX_TOKENS = 256


@dataclass(frozen=True)
class SamplingOverrides:
    """What the command line imposes on every request of a cell."""

    max_tokens: int | None = None
    ignore_eos: bool = False

    def for_request(self, request: BatchRequest) -> dict[str, Any]:
        """OpenAI-named sampling fields for one request: its own, then the overrides."""
        body = request.body
        params: dict[str, Any] = {
            "max_tokens": self.max_tokens or request.max_tokens or DEFAULT_MAX_TOKENS,
        }
        for key in ("temperature", "top_p", "seed", "stop"):
            if body.get(key) is not None:
                params[key] = body[key]
        if self.ignore_eos or body.get("ignore_eos") is True:  # vLLM's extension, used by random workloads
            params["ignore_eos"] = True
        return params

    def describe(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens, "ignore_eos": self.ignore_eos}


class Engine(Protocol):
    """Loaded once per (model, mode); `run` may be called once per round."""

    mode: str
    load_s: float | None

    def run(self, requests: Sequence[BatchRequest], sampling: SamplingOverrides) -> list[RequestRecord]: ...

    def describe(self) -> dict[str, Any]:
        """Engine name, version and platform, saved with every cell."""
        ...

    def fault(self) -> str | None:
        """Why the engine stopped being able to serve (a dead server), or None."""
        ...

    def close(self) -> None: ...


class EngineStartError(RuntimeError):
    """The engine could not start; the message is what the user needs to know."""
