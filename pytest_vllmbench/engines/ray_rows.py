"""Rows in and out of Ray Data's LLM processor: a request's row, the record an output row becomes, when a row was
in the engine, on which Ray nodes the engine stage made its rows, and Ray's errors cut to their cause. The
pre- and postprocess functions run on the cluster (imported there by name)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pytest_vllmbench.engines.base import SamplingOverrides
from pytest_vllmbench.measure.request_record import RequestRecord
from pytest_vllmbench.workload.batch import BatchRequest

ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours the names in its task errors
CAUSE = re.compile(r"^[\w.]*(Error|Exception|Exit): ")
# rows the driver builds before handing them to Ray's object store (and forgetting them): a job of millions of
# requests never has all its rows in the driver at once
ROWS_A_CHUNK = 16_384
# the operator Ray Data names after the vLLM engine stage's UDF (vLLMEngineStageUDF), in its block stats
ENGINE_STAGE = "vLLMEngineStage"


def chat_row(
    request: BatchRequest, sampling: SamplingOverrides, position: int = 0, defaults: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One dataset row: the request's place in the round, its messages and the same SamplingParams keywords an
    offline cell uses."""
    params = sampling.engine_params(request, defaults)
    response_format = request.body.get("response_format") or {}
    if response_format.get("type") == "json_object":
        params["structured_outputs"] = {"json_object": True}
    elif response_format.get("type") == "json_schema":
        params["structured_outputs"] = {"json": response_format["json_schema"]["schema"]}
    return {
        "position": position,
        "custom_id": request.custom_id,
        "messages": request.body["messages"],
        "sampling_params": params,
    }


def row_chunks(
    requests: Iterable[BatchRequest],
    sampling: SamplingOverrides,
    unsupported: Callable[[int, BatchRequest], None],
    size: int = ROWS_A_CHUNK,
) -> Iterator[list[dict[str, Any]]]:
    """The chat requests' rows, in request order, `size` at most a list; each other request goes to `unsupported`
    with its position instead (the processor's chat-template stage takes messages only)."""
    chunk: list[dict[str, Any]] = []
    for position, request in enumerate(requests):
        if not request.is_chat:
            unsupported(position, request)
            continue
        chunk.append(chat_row(request, sampling, position))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def record_from_row(row: dict[str, Any]) -> RequestRecord:
    """A record from one output row of the processor (after the postprocess below)."""
    error = row.get("error") or ""
    if error:
        return RequestRecord(row["custom_id"], error="engine_error")
    taken = row.get("time_taken_llm")
    return RequestRecord(
        custom_id=row["custom_id"],
        input_tokens=int(row.get("num_input_tokens") or 0),
        output_tokens=int(row.get("num_generated_tokens") or 0),
        e2el_s=float(taken) if isinstance(taken, (int, float)) and taken >= 0 else None,
        text=row.get("generated_text"),
    )


def row_span(row: dict[str, Any]) -> tuple[float, float] | None:
    """(entered the engine, finished) of one answered row, in epoch seconds on the cluster's clock; None for a
    row that failed."""
    taken = row.get("time_taken_llm")
    if row.get("error") or not isinstance(taken, (int, float)) or taken < 0:
        return None
    return row["finished_at"] - taken, row["finished_at"]


def rows_per_node(dataset: Any, stage: str) -> dict[str, int] | None:
    """{Ray node id: rows} the engine stage produced on each node, from Ray Data's own record of where it made each
    block (its block stats). Ray Data keeps them on a private attribute: None when that has moved."""
    try:
        pending = [dataset._raw_stats()]
        counts: dict[str, int] = {}
        while pending:
            stats = pending.pop()
            for operator, blocks in stats.metadata.items():
                if stage in operator:
                    for block in blocks:
                        node = getattr(block.exec_stats, "node_id", None)
                        if node:
                            counts[node] = counts.get(node, 0) + int(block.num_rows or 0)
            pending.extend(stats.parents)
    except (AttributeError, TypeError):
        return None
    return dict(sorted(counts.items())) or None


def preprocess(row: dict[str, Any]) -> dict[str, Any]:
    return row  # given explicitly only so that its map's resources can be set


def postprocess(row: dict[str, Any]) -> dict[str, Any]:
    """Runs on the cluster as each row leaves the engine stage: keep only what a record needs, and when."""
    return {
        "position": row["position"],
        "custom_id": row["custom_id"],
        "generated_text": row.get("generated_text", ""),
        "num_input_tokens": row.get("num_input_tokens", 0),
        "num_generated_tokens": row.get("num_generated_tokens", 0),
        "time_taken_llm": row.get("time_taken_llm", -1),
        "finished_at": time.time(),
        "error": row.get("__inference_error__", "") or "",
    }


def short_error(exc: BaseException, lines: int = 12) -> str:
    """The root cause first (the last `SomethingError: ...` line: Ray wraps the remote traceback around it),
    then the last lines of the text."""
    text = [line for line in ANSI.sub("", f"{type(exc).__name__}: {exc}").splitlines() if line.strip()]
    causes = [line.strip() for line in text if CAUSE.match(line.strip())]
    return "\n".join([causes[-1] if causes else text[0], *text[-lines:]])
