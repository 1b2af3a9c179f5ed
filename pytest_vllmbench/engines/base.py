"""The one small interface every engine implements, and what it is handed."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pytest_vllmbench.config.loads import LoadPoint
from pytest_vllmbench.measure.metrics import RequestRecord
from pytest_vllmbench.measure.progress import CellProgress
from pytest_vllmbench.measure.server_metrics import MetricsReader
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
    """Loaded once per (model, mode); `run` may be called once per round. Every method the runner calls is here;
    an engine inherits `EngineDefaults` for the parts it does not offer."""

    mode: str
    load_s: float | None
    batch_wall_s: float | None  # the last run's batch time as the engine itself saw it; None: the runner times it
    # the last run's batch as wall-clock times (epoch s), where the run holds more than the batch (ray: the replicas
    # start inside it): the GPU's busy share is read over it, as the rate is; None: the whole run
    batch_span: tuple[float, float] | None

    def run(
        self,
        requests: Sequence[BatchRequest],
        sampling: SamplingOverrides,
        progress: CellProgress | None = None,
        load: LoadPoint | None = None,
        on_sent: Callable[[str, float], None] | None = None,
    ) -> Iterable[RequestRecord]:
        """One record per request, in request order: a list, or an iterator that does the work as it is consumed
        (the runner stores each record as it comes, so a streaming engine's memory does not grow with the batch).
        `progress.finished(...)` once per finished request, when given. `load` (a sweep's point) and `on_sent`
        (each request's send time, for --trace-dir) reach the engines whose mode sweeps; the others get None."""
        ...

    def describe(self) -> dict[str, Any]:
        """Engine name, version and platform, saved with every cell."""
        ...

    def fault(self) -> str | None:
        """Why the engine stopped being able to serve (a dead server), or None."""
        ...

    def close(self) -> None: ...

    def reset_prefix_cache(self) -> bool | None:
        """Empty the prefix cache before a timed round: whether it worked; None when the engine offers no reset."""
        ...

    def effective_settings(self) -> dict[str, Any] | None:
        """The scheduler settings vLLM runs with, once started; None when it does not say."""
        ...

    def metrics_source(self) -> MetricsReader | None:
        """Where vLLM's metrics are read while a cell runs (a server's /metrics, the offline engine's registry);
        None: none to read."""
        ...

    def api_server_pids(self) -> frozenset[int]:
        """Its API server processes (their CPU is measured apart from the engine core's)."""
        ...

    def process_pids(self) -> frozenset[int]:
        """The processes it started (each with its children): an engine idle beside a timed cell is not the
        cell's host load."""
        ...

    def cell_figures(self) -> dict[str, Any]:
        """Figures only this engine knows, each declared in its ModeSpec's `figures`."""
        ...


class PendingEngine(Protocol):
    """An engine started ahead of its turn (--start-ahead): its processes load while the session goes on."""

    def wait(self) -> Engine:
        """The engine once it serves; EngineStartError (its processes stopped) when it cannot."""
        ...

    def cancel(self) -> None:
        """Stop it, whether it is still loading or serving; returns once none of its processes is left."""
        ...


class EngineDefaults:
    """What an engine answers for the parts it does not offer."""

    batch_wall_s: float | None = None
    batch_span: tuple[float, float] | None = None

    def reset_prefix_cache(self) -> bool | None:
        return None

    def effective_settings(self) -> dict[str, Any] | None:
        return None

    def metrics_source(self) -> MetricsReader | None:
        return None

    def api_server_pids(self) -> frozenset[int]:
        return frozenset()

    def process_pids(self) -> frozenset[int]:
        return frozenset()

    def cell_figures(self) -> dict[str, Any]:
        return {}


class EngineStartError(RuntimeError):
    """The engine could not start; the message is what the user needs to know."""


class EngineStartTimeout(EngineStartError):
    """The engine was still not serving when its start timeout ran out."""


class CellSkip(Exception):
    """The cell cannot be measured honestly here (no weights, no Ray, a GPU-only model on the CPU); the message
    says why. Any engine, and the cell's plan, may raise it."""


class DoesNotFit(CellSkip):
    """The model cannot fit in the memory budget; the message is the cell's status ('does not fit in ...')."""
