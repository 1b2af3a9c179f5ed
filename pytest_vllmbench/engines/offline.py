"""Offline mode: the model loaded once in-process with vllm.LLM, the batch submitted in large chunks."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from typing import Any

import psutil

from pytest_vllmbench.common.sigterm import interrupts_kept
from pytest_vllmbench.config.loads import LoadPoint
from pytest_vllmbench.engines.base import Engine, EngineDefaults, EngineStartError, SamplingOverrides
from pytest_vllmbench.engines.cell_plan import CellPlan
from pytest_vllmbench.engines.start_output import StartOutput, failure_reason, relevant_lines
from pytest_vllmbench.engines.supervisor import stop_children
from pytest_vllmbench.measure import engine_settings
from pytest_vllmbench.measure.metrics import RequestRecord
from pytest_vllmbench.measure.progress import CellProgress
from pytest_vllmbench.measure.server_metrics import InProcessMetrics
from pytest_vllmbench.workload.batch import BatchRequest

# Requests handed to vLLM at once: far above any max_num_seqs, so the engine stays full for all but the last steps
# of each chunk (docs/measurements.md), and a job of millions never has millions of prompts and outputs in memory.
SUBMIT_CHUNK = 16_384


def start(plan: CellPlan) -> Engine:
    return OfflineEngine(plan.model_source, plan.engine_args)


class OfflineEngine(EngineDefaults):
    mode = "offline"

    def __init__(self, model: str, engine_args: dict[str, Any]) -> None:
        started = time.perf_counter()
        before = {proc.pid for proc in psutil.Process().children(recursive=True)}
        output = StartOutput()
        try:
            from vllm import LLM

            with output, interrupts_kept():  # the engine core's own output says why vLLM did not start
                # Stats logging stays on: it is what gives each RequestOutput its timestamps.
                self._llm = LLM(model=model, disable_log_stats=False, **engine_args)
        except Exception as exc:  # vLLM raises many kinds; the cell reports the message
            stop_children(started_since(before), grace_s=5.0)
            raise EngineStartError(_start_error(model, exc, output.lines())) from exc
        except BaseException as interrupt:  # Ctrl-C or SIGTERM while it started: nothing it started outlives it
            try:
                stop_children(started_since(before), grace_s=5.0)
            except Exception as exc:  # a process that would not die: said, but the interrupt stays the outcome
                interrupt.add_note(str(exc))
            raise
        self._workers = started_since(before)  # the engine core and its helpers: gone when close() returns
        self.load_s: float | None = time.perf_counter() - started

    def run(
        self,
        requests: Sequence[BatchRequest],
        sampling: SamplingOverrides,
        progress: CellProgress | None = None,
        load: LoadPoint | None = None,
        on_sent: Callable[[str, float], None] | None = None,
    ) -> Iterator[RequestRecord]:
        """The batch in chunks of SUBMIT_CHUNK requests, each chunk's records handed on when it is done."""
        defaults = self._server_defaults()
        pending = iter(requests)
        while chunk := list(islice(pending, SUBMIT_CHUNK)):
            yield from self._run_chunk(chunk, sampling, progress, defaults)

    def _run_chunk(
        self,
        requests: list[BatchRequest],
        sampling: SamplingOverrides,
        progress: CellProgress | None,
        defaults: dict[str, Any],
    ) -> list[RequestRecord]:
        # vLLM's own progress hook: called as requests finish inside its engine loop, nothing else changes
        use_tqdm = progress.vllm_tqdm if progress is not None else False
        records: dict[str, RequestRecord] = {}
        chats: list[tuple[BatchRequest, Any]] = []
        completions: list[tuple[BatchRequest, Any]] = []
        for request in requests:
            try:
                params = _sampling_params(request, sampling, defaults)
            except Exception:  # vLLM refused this one request's parameters: it alone fails, as on a server
                records[request.custom_id] = RequestRecord(request.custom_id, error="invalid_request")
                if progress is not None:
                    progress.finished(False, 0)
                continue
            (chats if request.is_chat else completions).append((request, params))
        if chats:
            messages = [r.body["messages"] for r, _ in chats]
            outputs = self._llm.chat(messages, [p for _, p in chats], use_tqdm=use_tqdm)
            for (request, _), output in zip(chats, outputs, strict=True):
                records[request.custom_id] = record_from_stream(request.custom_id, output)
        if completions:
            prompts = [_completion_prompt(r.body["prompt"]) for r, _ in completions]
            outputs = self._llm.generate(prompts, [p for _, p in completions], use_tqdm=use_tqdm)
            for (request, _), output in zip(completions, outputs, strict=True):
                records[request.custom_id] = record_from_stream(request.custom_id, output)
        return [records[r.custom_id] for r in requests]

    def _server_defaults(self) -> dict[str, Any]:
        """The generation-config defaults vLLM's OpenAI server applies to requests that leave them out."""
        try:
            return dict(self._llm.llm_engine.model_config.get_diff_sampling_param())
        except AttributeError:
            return {}

    def metrics_source(self) -> InProcessMetrics | None:
        """vLLM's own metrics in this process (stats logging is on): preemptions and the KV cache's use."""
        read = getattr(self._llm, "get_metrics", None)
        return None if read is None else InProcessMetrics(read)

    def reset_prefix_cache(self) -> bool:
        """Empty the prefix cache, so that a round does not hit the blocks of the one before."""
        try:
            return bool(self._llm.reset_prefix_cache())
        except Exception:  # an engine without a prefix cache, or an older vLLM
            return False

    def effective_settings(self) -> dict[str, Any] | None:
        config = getattr(self._llm.llm_engine, "vllm_config", None)
        if config is None:
            return None
        return {**engine_settings.from_config_object(config), "source": "LLM.llm_engine.vllm_config"}

    def describe(self) -> dict[str, Any]:
        import vllm
        from vllm.platforms import current_platform

        return {"name": "vllm", "version": vllm.__version__, "platform": current_platform.device_type}

    def fault(self) -> str | None:
        return None  # in-process: a dead engine raises inside run()

    def process_pids(self) -> frozenset[int]:
        return frozenset(proc.pid for proc in self._workers)

    def close(self) -> None:
        llm = getattr(self, "_llm", None)
        if llm is None:
            return
        try:
            llm.llm_engine.engine_core.shutdown()
        finally:
            del self._llm, llm
            gc.collect()
            stop_children(self._workers)


def _start_error(model: str, exc: Exception, printed: list[str]) -> str:
    """First line: the engine's own reason when its processes printed one; then the lines that explain it."""
    raised, *more = f"{type(exc).__name__}: {exc}".splitlines() or [type(exc).__name__]
    reason = failure_reason(printed)
    head = f"vllm.LLM({model!r}) failed: " + (f"{reason} ({raised})" if reason and reason != raised else raised)
    lines = relevant_lines(printed)
    return "\n".join([head, *more] + (["the engine printed:", *lines] if lines else []))


def started_since(before: set[int]) -> list[psutil.Process]:
    """Our child processes that are new since `before`, with their own children, less multiprocessing's resource
    tracker: it is started on first use and serves this process until it exits, so it is no engine's to stop. The
    children a process of `before` starts meanwhile are its own (a server started ahead: its engine core)."""
    from multiprocessing import resource_tracker

    tracker = getattr(resource_tracker._resource_tracker, "_pid", None)
    ours = [proc for proc in psutil.Process().children() if proc.pid not in before | {tracker}]
    # a server is started in a session of its own, even one (re)spawned by a start-ahead thread meanwhile
    new = [proc for proc in ours if _session_of(proc.pid) == os.getsid(0)]
    return new + [child for proc in new for child in _children(proc)]


def _session_of(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:  # gone already
        return None


def _children(process: psutil.Process) -> list[psutil.Process]:
    try:
        return list(process.children(recursive=True))
    except psutil.NoSuchProcess:
        return []


def _sampling_params(request: BatchRequest, sampling: SamplingOverrides, defaults: dict[str, Any] | None = None) -> Any:
    """The request's sampling, with its response_format enforced as the OpenAI server would."""
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    params = sampling.engine_params(request, defaults)
    response_format = request.body.get("response_format") or {}
    if response_format.get("type") == "json_object":
        params["structured_outputs"] = StructuredOutputsParams(json_object=True)
    elif response_format.get("type") == "json_schema":
        params["structured_outputs"] = StructuredOutputsParams(json=response_format["json_schema"]["schema"])
    return SamplingParams(**params)


def _completion_prompt(prompt: Any) -> Any:
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], int):
        return {"prompt_token_ids": prompt}
    if isinstance(prompt, list):
        return prompt[0]  # the reader admits a list of strings only when it holds one prompt
    return prompt


def record_from_stream(custom_id: str, output: Any) -> RequestRecord:
    completion = output.outputs[0]
    stats = output.metrics  # engine-core monotonic timestamps, all on one clock
    e2el = ttft = done_at = None
    if stats is not None and stats.last_token_ts:
        done_at = stats.last_token_ts
        e2el = stats.last_token_ts - stats.queued_ts
        ttft = stats.first_token_ts - stats.queued_ts
    return RequestRecord(
        custom_id=custom_id,
        input_tokens=len(output.prompt_token_ids or ()),
        output_tokens=sum(len(choice.token_ids) for choice in output.outputs),  # all n choices, as usage counts
        e2el_s=e2el,
        ttft_s=ttft,
        text=completion.text,
        finish_reason=completion.finish_reason,
        done_at=done_at,
    )
