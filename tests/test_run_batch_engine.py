"""run-batch mode with vLLM's real batch runner on the embedded model (one engine load, about a minute)."""

from pathlib import Path

import pytest
from engine_memory import TEST_SHARE_ARG
from procs import session_members

from pytest_vllmbench.config.matrix import Cell
from pytest_vllmbench.config.registry import load_registry
from pytest_vllmbench.config.settings import merge_sources, resolve
from pytest_vllmbench.engines.base import SamplingOverrides
from pytest_vllmbench.engines.cell_plan import DummySources, plan_cell
from pytest_vllmbench.engines.run_batch import RunBatchEngine
from pytest_vllmbench.workload.batch import BatchRequest, read_batch
from pytest_vllmbench.workload.batch_line import COMPLETIONS_URL

pytestmark = pytest.mark.engine
REPO = Path(__file__).resolve().parents[1]


def test_the_real_runner_answers_the_cells_lines_and_leaves_nothing(tmp_path):
    registry = load_registry()
    settings = resolve(merge_sources({"mode": ["run-batch"], "engine_arg": [TEST_SHARE_ARG]}, {}, {}), REPO)
    cell = Cell(registry.resolve("gemma-270m"), "run-batch", "gemma-270m")
    requests = read_batch(REPO / "data" / "batch_5k.jsonl", limit=3)
    # the runner serves chat lines only, and refuses the whole file over a completions line (exit 1): that line
    # is not sent and fails alone, the others are answered
    requests.append(BatchRequest("completion-line", COMPLETIONS_URL, {"model": "gemma-270m", "prompt": "Hi"}, 99))
    plan = plan_cell(cell, settings, registry, DummySources())
    engine = RunBatchEngine(plan.model_source, "gemma-270m", plan.engine_args, work_dir=tmp_path)
    records = list(engine.run(requests, SamplingOverrides(max_tokens=8, ignore_eos=True)))
    assert engine.fault() is None
    assert [r.error for r in records] == [None, None, None, "unsupported_endpoint"]
    assert all(r.output_tokens == 8 and r.input_tokens > 50 and r.text for r in records[:3])
    assert 0 < engine.load_s < engine.end_to_end_s and 0 < engine.batch_wall_s < engine.end_to_end_s - engine.load_s
    assert list(tmp_path.iterdir()) == []  # batch, output and log removed after a clean run
    assert session_members(engine.pid) == []  # the runner and its engine core are gone when run() returns
