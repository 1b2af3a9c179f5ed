"""Cell plans for unit tests: the real planner over settings made from command-line values."""

from pathlib import Path

from pytest_vllmbench.config.matrix import Cell
from pytest_vllmbench.config.registry import load_registry
from pytest_vllmbench.config.settings import merge_sources, resolve
from pytest_vllmbench.engines.cell_plan import CellPlan, DummySources, plan_cell

REPO = Path(__file__).resolve().parents[1]


def plan_for(model: str = "gemma-270m", mode: str = "offline", **options: object) -> CellPlan:
    registry = load_registry()
    settings = resolve(merge_sources({"model": [model], "mode": [mode], **options}, {}, {}), REPO)
    spec = registry.resolve_served(model) if mode == "endpoint" else registry.resolve(model)
    return plan_cell(Cell(spec, mode, model), settings, registry, DummySources())
