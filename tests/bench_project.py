"""A benchmark project as a user has one, for pytester sessions: the repository's benchmarks/test_batch.py, the 5K
sample under data/, and the conftest a test puts in place of vLLM."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def bench_project(pytester: pytest.Pytester, conftest: str | None = None, dataset: bool = True) -> pytest.Pytester:
    (pytester.path / "benchmarks").mkdir()
    (pytester.path / "benchmarks" / "test_batch.py").write_text((REPO / "benchmarks" / "test_batch.py").read_text())
    if conftest is not None:
        pytester.makeconftest(conftest)
    if dataset:
        (pytester.path / "data").mkdir()
        (pytester.path / "data" / "batch_5k.jsonl").symlink_to(REPO / "data" / "batch_5k.jsonl")
    return pytester
