"""One benchmark session: settings, the workload (read once) and the engine pool."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from pytest_vllmbench.cells import Cell, build_matrix
from pytest_vllmbench.engines.base import SamplingOverrides
from pytest_vllmbench.engines.factory import engine_args, start_engine
from pytest_vllmbench.fileio import sha256_of
from pytest_vllmbench.pool import EnginePool
from pytest_vllmbench.registry import Registry
from pytest_vllmbench.runner import CellOutcome, Timed, run_cell
from pytest_vllmbench.settings import Settings
from pytest_vllmbench.workload import BatchRequest, read_batch, select


class BenchSession:
    def __init__(self, settings: Settings, registry: Registry, rootdir: Path) -> None:
        self.settings = settings
        self.registry = registry
        self.rootdir = rootdir
        self.cells: list[Cell] = build_matrix(settings.models, settings.modes, registry)
        self.pool = EnginePool(lambda cell: start_engine(cell, settings, registry))
        self.sampling = SamplingOverrides(settings.max_tokens, settings.ignore_eos)

    @cached_property
    def workload(self) -> list[BatchRequest]:
        """Read and validated once; raises BatchFileError naming every bad line."""
        requests = read_batch(self.settings.dataset, limit=self.settings.limit)
        return select(requests, self.settings.sample, self.settings.seed)

    @cached_property
    def dataset_info(self) -> dict[str, Any]:
        path = self.settings.dataset
        shown = path.relative_to(self.rootdir) if path.is_relative_to(self.rootdir) else path
        return {
            "path": str(shown),
            "sha256": sha256_of(path),
            "limit": self.settings.limit,
            "sample": self.settings.sample,
            "seed": self.settings.seed if self.settings.sample else None,
        }

    def run(self, cell: Cell, timed: Timed) -> CellOutcome:
        requests = self.workload
        engine = self.pool.get(cell)
        context = {
            "engine_args": engine_args(cell, self.settings, self.registry),
            "dataset": self.dataset_info,
        }
        return run_cell(
            cell, engine, requests, self.sampling, context, self.settings.project_to, timed, self.settings.slo_ms
        )

    def close(self) -> None:
        self.pool.close()
