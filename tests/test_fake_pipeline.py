"""The whole pipeline in seconds with a FAKE engine (no vLLM): the real benchmark test and cell matrix, records ->
figures -> saved JSON -> score -> report -> gate, in-session, across three pytest runs."""

import json
from pathlib import Path

import pytest

from tests.bench_project import bench_project

REPO = Path(__file__).resolve().parents[1]
# A FAKE engine behind the real session: each request takes FAKE_E2EL_S seconds, 4 tokens, first after 10 ms.
FAKE_ENGINE_CONFTEST = """
import os
from pytest_vllmbench.run import session
from pytest_vllmbench.engines.base import EngineDefaults
from pytest_vllmbench.measure.metrics import RequestRecord


class FakeEngine(EngineDefaults):
    load_s = 1.0

    def __init__(self, mode):
        self.mode = mode

    def run(self, requests, sampling, progress=None, load=None, on_sent=None):
        e2el = float(os.environ["FAKE_E2EL_S"])
        records = []
        for request in requests:
            records.append(RequestRecord(request.custom_id, input_tokens=20, output_tokens=4, e2el_s=e2el,
                                         ttft_s=0.01, itl_s=[(e2el - 0.01) / 3] * 3, text="{}",
                                         finish_reason="length"))
            if progress is not None:
                progress.finished(True, 4)
        return records

    def describe(self):
        return {"name": "fake", "version": "0", "platform": "cpu"}

    def fault(self):
        return None

    def close(self):
        pass


session.start_engine = lambda plan: FakeEngine(plan.cell.mode)
"""
ARGS = [
    "benchmarks",
    "-p",
    "no:cacheprovider",
    "--model=gemma-270m",
    "--mode=offline",
    "--mode=server",
    "--limit=4",
    "--max-tokens=4",
]


@pytest.fixture
def fake_engine(pytester):
    bench_project(pytester, FAKE_ENGINE_CONFTEST)
    return pytester


def saved(pytester, name):
    [path] = (pytester.path / ".benchmarks").glob(f"*/*_{name}.json")
    return {b["extra_info"]["cell"]: b["extra_info"] for b in json.loads(path.read_text())["benchmarks"]}


def test_record_json_score_report_and_gate_in_seconds(fake_engine, monkeypatch):
    monkeypatch.setenv("FAKE_E2EL_S", "0.1")
    first = fake_engine.runpytest_subprocess(*ARGS, "--benchmark-save=base")
    assert first.ret == 0, first.stdout.str()[-3000:]
    cells = saved(fake_engine, "base")
    assert set(cells) == {"gemma-270m-offline", "gemma-270m-server"}
    for cell in cells.values():  # figures computed from the fake engine's records, not written by the test
        assert cell["n_requests"] == 4 and cell["n_failed"] == 0 and cell["output_tokens"] == 16
        assert cell["e2el_ms_p50"] == pytest.approx(100.0) and cell["ttft_ms_p50"] == pytest.approx(10.0)
        assert cell["engine"]["name"] == "fake" and cell["score"] is not None
    assert "vllmbench summary" in first.stdout.str()
    report = (fake_engine.path / "BENCHMARKS.md").read_text()
    assert "gemma-270m" in report and f"{cells['gemma-270m-server']['requests_per_s']:,.2f}" in report

    # slower requests: the gate against the saved run (the latest) fails the session
    monkeypatch.setenv("FAKE_E2EL_S", "0.3")
    slower = fake_engine.runpytest_subprocess(*ARGS, "--benchmark-save=slow", "--vllmbench-gate=e2el_ms_p50:+10%")
    assert slower.ret == 1, slower.stdout.str()[-3000:]
    slower.stdout.fnmatch_lines(
        ["*vllmbench gate against*0001_base.json*", "*gemma-270m-offline*e2el_ms_p50*REGRESSION*"]
    )
    assert saved(fake_engine, "slow")["gemma-270m-offline"]["e2el_ms_p50"] == pytest.approx(300.0)

    # back to the first run's speed, gated against run 1 by number: within the tolerance, the session passes
    monkeypatch.setenv("FAKE_E2EL_S", "0.1")
    again = fake_engine.runpytest_subprocess(*ARGS, "--vllmbench-gate=e2el_ms_p50:+10%", "--vllmbench-baseline=1")
    assert again.ret == 0, again.stdout.str()[-3000:]
    assert "REGRESSION" not in again.stdout.str() and "Traceback" not in again.stdout.str()


OUT_OF_MEMORY_CONFTEST = """
# SIMULATED out-of-memory start (no GPU here): every engine fails to start the way vLLM does when the weights fill it.
from pytest_vllmbench.engines.base import EngineStartError
from pytest_vllmbench.run import session


def out_of_memory(plan):
    raise EngineStartError("SIMULATED torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")


session.start_engine = out_of_memory
"""


def test_a_session_whose_only_cell_does_not_fit_still_saves_that_answer(fake_engine):
    """pytest-benchmark saves nothing when no benchmark ran: a 'does not fit' verdict used to be lost with it."""
    fake_engine.makeconftest(OUT_OF_MEMORY_CONFTEST)
    result = fake_engine.runpytest_subprocess(
        "benchmarks",
        "-p",
        "no:cacheprovider",
        "--model=qwen-14b",
        "--mode=offline",
        "--limit=2",
        "--benchmark-save=oom",
    )
    assert result.ret == 0, result.stdout.str()[-3000:]  # a cell that does not fit is an answer, skipped
    [path] = (fake_engine.path / ".benchmarks").glob("*/*_oom.json")
    data = json.loads(path.read_text())
    assert data["benchmarks"] == []
    [unrun] = data["vllmbench"]["unrun"]
    assert unrun["cell"] == "qwen-14b-offline" and unrun["status"].startswith("does not fit: needs ~27.6 GiB")
    report = (fake_engine.path / "BENCHMARKS.md").read_text()
    assert "qwen-14b" in report and "does not fit: needs ~27.6 GiB" in report


QWEN_DOES_NOT_FIT_CONFTEST = """
from pytest_vllmbench.engines.base import EngineStartError


def start_or_run_out_of_memory(plan):
    if plan.cell.model.alias == "qwen-14b":  # SIMULATED: the weights fill the GPU
        raise EngineStartError("SIMULATED torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
    return FakeEngine(plan.cell.mode)


session.start_engine = start_or_run_out_of_memory
"""


def test_under_xdist_the_cells_that_did_not_fit_reach_the_merged_run_as_they_would_without_it(fake_engine, monkeypatch):
    """Unrun cells travel typed in the session and as JSON through the workers' partial files: the merged run saves
    them as a single process does."""
    fake_engine.makeconftest(FAKE_ENGINE_CONFTEST + QWEN_DOES_NOT_FIT_CONFTEST)
    monkeypatch.setenv("FAKE_E2EL_S", "0.01")
    args = ["benchmarks", "-p", "no:cacheprovider", "--model=gemma-270m", "--model=qwen-14b", "--mode=offline"]
    unrun = {}
    for name, extra in (("one", []), ("two", ["-n", "2"])):
        result = fake_engine.runpytest_subprocess(*args, "--limit=2", f"--benchmark-save={name}", *extra)
        assert result.ret == 0, result.stdout.str()[-3000:]
        [path] = (fake_engine.path / ".benchmarks").glob(f"*/*_{name}.json")
        data = json.loads(path.read_text())
        assert [bench["extra_info"]["cell"] for bench in data["benchmarks"]] == ["gemma-270m-offline"]
        unrun[name] = data["vllmbench"]["unrun"]
    assert [cell["cell"] for cell in unrun["one"]] == ["qwen-14b-offline"]
    assert unrun["one"][0]["status"].startswith("does not fit")
    # the same entry, but for the engine's memory share: two CPU workers split the machine
    one, two = (
        {key: value for key, value in cell.items() if key != "engine_args"} for cell in (*unrun["one"], *unrun["two"])
    )
    assert list(two) == list(one) and two == one
