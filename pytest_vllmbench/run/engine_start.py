"""Start the engine a cell's plan asks for: its mode's registered start function, after the weights check."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from pytest_vllmbench.config.modes import ModeSpec
from pytest_vllmbench.engines.base import CellSkip, Engine
from pytest_vllmbench.engines.cell_plan import CellPlan
from pytest_vllmbench.engines.hub_access import weights_unavailable

StartFunction = Callable[[CellPlan], Engine]


def start_function(mode: ModeSpec) -> StartFunction:
    """The mode's `start`, imported now: an engine's heavy imports wait until a cell of its mode starts."""
    module_name, _, name = mode.start.partition(":")
    start = getattr(importlib.import_module(module_name), name, None)
    if not callable(start):
        raise TypeError(f"mode {mode.name!r}: {mode.start} is not a function")
    function: StartFunction = start
    return function


def start_engine(plan: CellPlan) -> Engine:
    if plan.mode.owns_engine and (missing := weights_unavailable(plan.model_source)):
        raise CellSkip(f"{plan.cell.id}: {missing}")  # before vLLM is imported or asks the hub
    return start_function(plan.mode)(plan)
