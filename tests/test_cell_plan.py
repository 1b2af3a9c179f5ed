"""A cell is planned once: following one cell through the session enters no module twice for the same question."""

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

from pytest_vllmbench.config.modes import register, unregister
from pytest_vllmbench.config.registry import load_registry
from pytest_vllmbench.config.settings import merge_sources, resolve
from pytest_vllmbench.run.session import BenchSession
from pytest_vllmbench.run.verdict import measure_cell
from tests.fake_mode import FAKE_MODE

REPO = Path(__file__).resolve().parents[1]
# where a cell's questions are answered: its mode, engine args, weights, GPUs, budget, platform, start (the
# telemetry's GpuSampler reads the energy counter before and after a round: two readings, not one question asked twice)
PLANNING = (
    "pytest_vllmbench.config.modes",
    "pytest_vllmbench.config.registry",
    "pytest_vllmbench.config.memory_budget",
    "pytest_vllmbench.engines.cell_plan",
    "pytest_vllmbench.engines.dummy_weights",
    "pytest_vllmbench.engines.embedded_model",
    "pytest_vllmbench.engines.hub_access",
    "pytest_vllmbench.engines.vllm_cli",
    "pytest_vllmbench.measure.gpu",
    "pytest_vllmbench.run.engine_start",
)


@pytest.fixture
def fake_mode():
    register(FAKE_MODE)
    yield FAKE_MODE
    unregister(FAKE_MODE.name)


def entries(run) -> Counter:
    """(module, function) of every call into a package module from another module while `run()` runs."""
    counted: Counter = Counter()

    def profile(frame, event, arg):
        if event != "call":
            return
        module = frame.f_globals.get("__name__", "")
        caller = frame.f_back.f_globals.get("__name__", "") if frame.f_back else ""
        if module.startswith("pytest_vllmbench.") and module != caller and frame.f_code.co_name != "<genexpr>":
            counted[(module, frame.f_code.co_qualname)] += 1

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return counted


def test_a_dummy_weight_cell_asks_each_planning_question_once(tmp_path, fake_mode):
    model = tmp_path / "tiny"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "tiny"}))
    (model / "tokenizer.json").write_text("{}")
    raw = merge_sources({"model": [str(model)], "mode": [fake_mode.name], "limit": 2, "load_format": "dummy"}, {}, {})
    session = BenchSession(resolve(raw, REPO), load_registry(), REPO)
    [cell] = session.cells
    verdicts = []
    counted = entries(lambda: verdicts.append(measure_cell(session, cell, lambda fn: fn(), None, None)))
    [verdict] = verdicts
    assert verdict.failed is None and verdict.skipped is None, verdict
    assert verdict.outcome is not None and verdict.outcome.result.weights == "dummy weights"
    planning = {key: n for key, n in counted.items() if key[0] in PLANNING and not key[1].startswith("GpuSampler.")}
    assert ("pytest_vllmbench.engines.cell_plan", "plan_cell") in planning
    assert ("pytest_vllmbench.engines.dummy_weights", "resolve_dummy") in planning
    assert {key: n for key, n in planning.items() if n > 1} == {}
