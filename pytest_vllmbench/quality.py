"""Quality of a cell's outputs, scored in memory: JSON validity per response_format, gold-label accuracy."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_vllmbench.metrics import RequestRecord
from pytest_vllmbench.workload import BatchRequest

Gold = Mapping[str, Mapping[str, Any]]  # custom_id -> expected fields of the output's JSON


def gold_path_for(batch_path: Path) -> Path:
    """`batch_5k.jsonl` -> `batch_5k.gold.jsonl`: lines of {custom_id, field: expected, ...}."""
    return batch_path.with_name(batch_path.stem + ".gold.jsonl")


def load_gold(batch_path: Path) -> dict[str, dict[str, Any]] | None:
    path = gold_path_for(batch_path)
    if not path.is_file():
        return None
    gold = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            gold[entry.pop("custom_id")] = entry
        except (ValueError, KeyError, AttributeError):
            raise ValueError(f"{path}:{number}: expected a JSON object with a custom_id") from None
    return gold


def _json_object(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _satisfies(request: BatchRequest, output: dict[str, Any] | None) -> bool:
    if output is None:
        return False
    response_format = request.body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        required = response_format["json_schema"]["schema"].get("required", [])
        return all(key in output for key in required)
    return True


def _matches(expected: Mapping[str, Any], output: dict[str, Any] | None) -> bool:
    if output is None:
        return False
    return all(str(output.get(key, "")).strip().lower() == str(value).strip().lower() for key, value in expected.items())


def score_quality(requests: Sequence[BatchRequest], records: Sequence[RequestRecord], gold: Gold | None) -> dict[str, Any]:
    """`quality_valid_rate` over requests that ask for JSON; `quality_accuracy` over requests with a gold label.

    A failed request counts as invalid and wrong. Nulls when nothing could be checked.
    """
    by_id = {record.custom_id: record for record in records}
    checked = valid = graded = correct = 0
    for request in requests:
        record = by_id.get(request.custom_id)
        output = _json_object(record.text) if record is not None and record.ok else None
        if (request.body.get("response_format") or {}).get("type") in ("json_object", "json_schema"):
            checked += 1
            valid += _satisfies(request, output)
        if gold is not None and request.custom_id in gold:
            graded += 1
            correct += _matches(gold[request.custom_id], output)
    return {
        "quality_valid_rate": round(valid / checked, 4) if checked else None,
        "quality_accuracy": round(correct / graded, 4) if graded else None,
        "quality_checked": checked,
        "quality_graded": graded,
    }
