"""Hooks a project's conftest.py can implement to change how cells are judged."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookspec(firstresult=True)
def pytest_vllmbench_quality(cell_id: str, requests: list[Any], records: list[Any], gold: Any) -> dict[str, Any] | None:
    """Score a cell's outputs; return a dict of ``quality_*`` figures, or None to keep the built-in scorer.

    ``requests`` are the cell's :class:`~pytest_vllmbench.workload.batch.BatchRequest` objects, ``records`` the matching
    :class:`~pytest_vllmbench.measure.metrics.RequestRecord` objects (``record.text`` holds the output, in memory only),
    ``gold`` the dataset's gold labels by ``custom_id`` (or None). Include ``quality_accuracy`` or
    ``quality_valid_rate`` (0..1) for the score to use; the built-in scorer reports both. Every figure returned must be
    declared on :class:`~pytest_vllmbench.measure.cell_record.CellRecord`, or the cell fails naming it.
    """


@pytest.hookspec(firstresult=True)
def pytest_vllmbench_score(cells: list[dict[str, Any]], weights: dict[str, float]) -> list[dict[str, Any]] | None:
    """Score the cells of one comparison set (one machine, one run); return None to keep the built-in scoring.

    ``cells`` are the cells' ``extra_info`` dicts; return one dict per cell, in the same order, holding at least
    ``score`` (higher is better). ``weights`` are the configured weights (``[tool.vllmbench.weights]``).
    """
