"""Quality of a cell's outputs, scored in memory: JSON validity per response_format, gold-label accuracy."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pytest_vllmbench.common.cut import shown
from pytest_vllmbench.common.numbers import is_finite_number
from pytest_vllmbench.measure.cell_record import UndeclaredFigure, undeclared
from pytest_vllmbench.measure.metrics import RequestRecord
from pytest_vllmbench.workload.batch import BatchRequest
from pytest_vllmbench.workload.gold import Gold


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
    return all(
        str(output.get(key, "")).strip().lower() == str(value).strip().lower() for key, value in expected.items()
    )


def paired(
    requests: Iterable[BatchRequest], records: Iterable[RequestRecord]
) -> Iterator[tuple[BatchRequest, RequestRecord | None]]:
    """Each request with its record. Engines give records in request order, which is read as a stream; at the
    first record out of place the rest are looked up by custom_id (None: the request has no record)."""
    remaining = iter(records)
    by_id: dict[str, RequestRecord] | None = None
    for request in requests:
        if by_id is None:
            record = next(remaining, None)
            if record is not None and record.custom_id == request.custom_id:
                yield request, record
                continue
            by_id = {r.custom_id: r for r in remaining}
            if record is not None:
                by_id[record.custom_id] = record
        yield request, by_id.get(request.custom_id)


def score_quality(
    requests: Iterable[BatchRequest], records: Iterable[RequestRecord], gold: Gold | None
) -> dict[str, Any]:
    """`quality_valid_rate` over requests that ask for JSON; `quality_accuracy` over requests with a gold label.

    A failed request counts as invalid and wrong. Nulls when nothing could be checked.
    """
    checked = valid = graded = correct = 0
    for request, record in paired(requests, records):
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


def project_figures(figures: object) -> dict[str, Any] | None:
    """A project's quality hook's answer, checked: None (the built-in scorer), or declared `quality_*` figures whose
    values are numbers or None. Anything else would overwrite what the cell measured or break its scoring."""
    if figures is None:
        return None
    hook = "the pytest_vllmbench_quality hook"
    if not isinstance(figures, Mapping):
        raise UndeclaredFigure(f"{hook} returned a {type(figures).__name__}, not a dict of quality_* figures or None")
    if others := sorted(str(name) for name in figures if not str(name).startswith("quality_")):
        raise UndeclaredFigure(f"{hook} may return only quality_* figures, not {others}")
    if unknown := undeclared(figures):
        raise UndeclaredFigure(
            f"{hook} returned figure(s) {unknown} that CellRecord does not declare (measure/cell_record.py)"
        )
    for name, value in figures.items():
        if value is not None and not is_finite_number(value):
            raise UndeclaredFigure(f"{hook}: {name} must be a finite number or None, not {shown(value)}")
    return dict(figures)
