"""The one small interface every engine implements, and what it is handed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pytest_vllmbench.measure.metrics import RequestRecord
from pytest_vllmbench.measure.progress import CellProgress
from pytest_vllmbench.workload.batch import BatchRequest

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

    def engine_params(self, request: BatchRequest, defaults: dict[str, Any] | None = None) -> dict[str, Any]:
        """vLLM SamplingParams keywords for the work the OpenAI server would do on the same body, so offline
        and server cells generate the same tokens (`n`, penalties, logprobs, stop...). `defaults` are the
        model's generation-config values the server also starts from (temperature, top_p, top_k, ...)."""
        body = request.body
        params = {key: value for key, value in (defaults or {}).items() if key in SERVER_DEFAULTED}
        params |= self.for_request(request)
        params |= {key: body[key] for key in PASSED_AS_IS if body.get(key) is not None}
        if body.get("logit_bias"):
            params["logit_bias"] = {int(token): float(bias) for token, bias in body["logit_bias"].items()}
        if request.is_chat:  # chat: logprobs is a switch and top_logprobs the count, as the server maps them
            if body.get("logprobs"):
                params["logprobs"] = body.get("top_logprobs") or 0
        elif body.get("logprobs") is not None:
            params["logprobs"] = body["logprobs"]
        return params

    def describe(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens, "ignore_eos": self.ignore_eos}


# what vLLM's OpenAI server takes from the model's generation config when a request leaves it out
SERVER_DEFAULTED = frozenset({"temperature", "top_p", "top_k", "min_p", "repetition_penalty"})
# body fields whose OpenAI name and meaning are SamplingParams' own
PASSED_AS_IS = (
    "n",
    "top_k",
    "min_p",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
    "stop_token_ids",
    "min_tokens",
    "include_stop_str_in_output",
    "skip_special_tokens",
    "spaces_between_special_tokens",
)


class Engine(Protocol):
    """Loaded once per (model, mode); `run` may be called once per round."""

    mode: str
    load_s: float | None

    def run(
        self, requests: Sequence[BatchRequest], sampling: SamplingOverrides, progress: CellProgress | None = None
    ) -> list[RequestRecord]:
        """`progress.finished(...)` once per finished request, when given."""
        ...

    def describe(self) -> dict[str, Any]:
        """Engine name, version and platform, saved with every cell."""
        ...

    def fault(self) -> str | None:
        """Why the engine stopped being able to serve (a dead server), or None."""
        ...

    def close(self) -> None: ...


class EngineStartError(RuntimeError):
    """The engine could not start; the message is what the user needs to know."""
