"""Start the engine a cell's plan asks for: its mode's registered start function, after the weights check."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from pytest_vllmbench.config.modes import ModeSpec
from pytest_vllmbench.engines.base import CellSkip, Engine, PendingEngine
from pytest_vllmbench.engines.cell_plan import CellPlan
from pytest_vllmbench.engines.hub_access import weights_unavailable

StartFunction = Callable[[CellPlan], Engine]
StartAheadFunction = Callable[[CellPlan], PendingEngine]


def start_function(mode: ModeSpec) -> StartFunction:
    """The mode's `start`, imported now: an engine's heavy imports wait until a cell of its mode starts."""
    function: StartFunction = _imported(mode, mode.start)
    return function


def _imported(mode: ModeSpec, target: str) -> Any:
    module_name, _, name = target.partition(":")
    function = getattr(importlib.import_module(module_name), name, None)
    if not callable(function):
        raise TypeError(f"mode {mode.name!r}: {target} is not a function")
    return function


def start_engine(plan: CellPlan) -> Engine:
    if plan.mode.owns_engine and (missing := weights_unavailable(plan.model_source)):
        raise CellSkip(f"{plan.cell.id}: {missing}")  # before vLLM is imported or asks the hub
    return start_function(plan.mode)(plan)


def start_engine_ahead(plan: CellPlan) -> PendingEngine | None:
    """The cell's engine started in the background (--start-ahead), or None where its mode cannot be or its weights
    are not at hand (its cell then starts it, or says why not, in its turn)."""
    if plan.mode.start_ahead is None or weights_unavailable(plan.model_source):
        return None
    start: StartAheadFunction = _imported(plan.mode, plan.mode.start_ahead)
    return start(plan)
