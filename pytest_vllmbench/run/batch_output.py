"""Write a cell's results in OpenAI's batch output format: one line per input line, in input order."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pytest_vllmbench.common.files import atomic_writer
from pytest_vllmbench.measure.metrics import RequestRecord
from pytest_vllmbench.measure.quality import paired
from pytest_vllmbench.workload.batch import BatchRequest


def output_line(index: int, request: BatchRequest, record: RequestRecord, model: str, created: int) -> dict[str, Any]:
    line: dict[str, Any] = {"id": f"batch_req_{index:06d}", "custom_id": request.custom_id}
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
    """Written as the requests and records stream by, each line dropped once written."""
    created = int(time.time())
    with atomic_writer(path) as handle:
        for index, (request, found) in enumerate(paired(requests, records)):
            record = found or RequestRecord(request.custom_id, error="not_run")
            handle.write(json.dumps(output_line(index, request, record, model, created), ensure_ascii=False) + "\n")
    return path
