"""Write a cell's results in OpenAI's batch output format: one line per input line, in input order."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pytest_vllmbench.common.files import atomic_writer, first_line_json, refuse_foreign
from pytest_vllmbench.measure.metrics import RequestRecord
from pytest_vllmbench.measure.quality import paired
from pytest_vllmbench.workload.batch import BatchRequest

_LINE_KEYS = {"id", "custom_id", "response", "error"}


def outputs_path(folder: Path, cell_id: str) -> Path:
    """Where --write-outputs puts a cell's batch output file."""
    return folder / f"{cell_id}.jsonl"


def _line_id(index: int) -> str:
    return f"batch_req_{index:06d}"


def ours(path: Path) -> bool:
    """Whether an existing output file was written by this tool. The format has no room for a header, so its first
    line is recognised: our numbering of ids, and a response whose request id is the one we make from the custom_id
    (OpenAI's and other tools' ids are random)."""
    first = first_line_json(path)
    if not isinstance(first, dict) or first.get("id") != _line_id(0) or set(first) != _LINE_KEYS:
        return False
    response, custom_id = first["response"], first["custom_id"]
    if response is None:
        return first["error"] is not None
    made_ids = {f"chatcmpl-{custom_id}", f"cmpl-{custom_id}"}
    return isinstance(response, dict) and response.get("request_id") in made_ids


def output_line(index: int, request: BatchRequest, record: RequestRecord, model: str, created: int) -> dict[str, Any]:
    line: dict[str, Any] = {"id": _line_id(index), "custom_id": request.custom_id}
    if not record.ok:
        return line | {"response": None, "error": {"code": record.error, "message": f"request failed: {record.error}"}}
    usage = {
        "prompt_tokens": record.input_tokens,
        "completion_tokens": record.output_tokens,
        "total_tokens": record.input_tokens + record.output_tokens,
    }
    if request.is_chat:
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": record.text},
            "finish_reason": record.finish_reason,
        }
        body: dict[str, Any] = {"id": f"chatcmpl-{request.custom_id}", "object": "chat.completion"}
    else:
        choice = {"index": 0, "text": record.text, "finish_reason": record.finish_reason}
        body = {"id": f"cmpl-{request.custom_id}", "object": "text_completion"}
    body |= {"created": created, "model": model, "choices": [choice], "usage": usage}
    return line | {"response": {"status_code": 200, "request_id": body["id"], "body": body}, "error": None}


def write_batch_output(
    path: Path, requests: Iterable[BatchRequest], records: Iterable[RequestRecord], model: str
) -> Path:
    """Written as the requests and records stream by, each line dropped once written. An existing file this tool
    did not write is left alone (OSError says so)."""
    refuse_foreign(path, ours)
    created = int(time.time())
    with atomic_writer(path) as handle:
        for index, (request, found) in enumerate(paired(requests, records)):
            record = found or RequestRecord(request.custom_id, error="not_run")
            handle.write(json.dumps(output_line(index, request, record, model, created), ensure_ascii=False) + "\n")
    return path
