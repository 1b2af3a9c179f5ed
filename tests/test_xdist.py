"""pytest-xdist: workers measure, the controller saves ONE merged run; a crashed worker loses only its cells."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from bench_project import bench_project

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.pytest_plugin.xdist_workers import gpus_for_worker

REPO = Path(__file__).resolve().parents[1]

TESTS = """
import os, time
import pytest

@pytest.mark.parametrize("n", range(4))
def test_measured(benchmark, n):
    benchmark.pedantic(time.sleep, args=(0.01,), rounds=2)
    benchmark.extra_info["n"] = n

def test_worker_dies(benchmark):
    if os.environ.get("KILL_A_WORKER"):
        os._exit(13)  # the worker process dies mid-test
    benchmark.pedantic(time.sleep, args=(0.01,), rounds=1)
"""


def saved_runs(path):
    return sorted(path.glob(".benchmarks/*/*.json"))


@pytest.mark.parametrize(
    "loading",
    [[], ["-p", "no:vllmbench", "-p", "pytest_vllmbench.pytest_plugin.plugin"]],
    ids=["entry-point", "loaded-first-with-p"],
)
def test_two_workers_save_one_merged_run_that_pytest_benchmark_reads(pytester, loading):
    pytester.makepyfile(test_bench=TESTS)
    result = pytester.runpytest(*loading, "-n", "2", "--benchmark-save=merged", "--report=none")
    assert result.ret == 0, result.stdout.str()
    [run] = saved_runs(pytester.path)
    data = json.loads(run.read_text())
    names = sorted(bench["name"] for bench in data["benchmarks"])
    assert names == sorted([f"test_measured[{n}]" for n in range(4)] + ["test_worker_dies"])
    assert {bench["extra_info"]["xdist_worker"] for bench in data["benchmarks"]} == {"gw0", "gw1"}
    assert all(bench["stats"]["rounds"] >= 1 and bench["stats"]["mean"] > 0 for bench in data["benchmarks"])
    assert "xdist_workers" in data["machine_info"]["vllmbench"]
    assert not list(pytester.path.glob(".benchmarks/.partial-*"))  # partial files are cleaned up
    listed = subprocess.run(
        [
            str(Path(sys.executable).with_name("pytest-benchmark")),
            "--storage",
            str(pytester.path / ".benchmarks"),
            "compare",
            str(run),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "test_measured[3]" in listed.stdout


def test_a_crashed_worker_loses_only_its_own_cell(pytester, monkeypatch):
    pytester.makepyfile(test_bench=TESTS)
    monkeypatch.setenv("KILL_A_WORKER", "1")
    result = pytester.runpytest("-n", "2", "--benchmark-save=crash", "--report=none")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*test_worker_dies*", "*crashed*"])
    [run] = saved_runs(pytester.path)
    names = sorted(bench["name"] for bench in json.loads(run.read_text())["benchmarks"])
    assert names == [f"test_measured[{n}]" for n in range(4)]


def test_each_worker_gets_its_own_gpus():
    assert gpus_for_worker("gw0", 1, 2) == [0] and gpus_for_worker("gw1", 1, 2) == [1]
    assert gpus_for_worker("gw1", 2, 4) == [2, 3]
    with pytest.raises(UsageError, match="at most -n 2"):
        gpus_for_worker("gw2", 1, 2)


# A FAKE engine that notes the share of the machine its session gave it and reports each finished request.
NOTING_ENGINE_CONFTEST = """
from pytest_vllmbench.engines.base import EngineDefaults
from pytest_vllmbench.measure.metrics import RequestRecord
from pytest_vllmbench.run import session


class FakeEngine(EngineDefaults):
    load_s = 1.0

    def __init__(self, mode):
        self.mode = mode

    def run(self, requests, sampling, progress=None, load=None, on_sent=None):
        for request in requests:
            if progress is not None:
                progress.finished(True, 4)
        return [RequestRecord(r.custom_id, input_tokens=20, output_tokens=4, e2el_s=0.1, ttft_s=0.01) for r in requests]

    def describe(self):
        return {"name": "fake", "version": "0", "platform": "cpu"}

    def fault(self):
        return None

    def close(self):
        pass


def start(plan):
    with open("workers.txt", "a") as out:
        out.write(f"{plan.settings.workers}\\n")
    return FakeEngine(plan.cell.mode)


session.start_engine = start
"""


def test_a_session_inside_an_xdist_worker_is_no_worker_itself(pytester, monkeypatch):
    """This suite runs under xdist: a session it starts inherits the worker's PYTEST_XDIST_* variables, yet is a
    plain session (progress on its terminal, the whole machine, a saved run), not a worker of some controller."""
    bench_project(pytester, NOTING_ENGINE_CONFTEST, dataset=False)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    result = pytester.runpytest_subprocess(
        "benchmarks",
        f"--dataset={REPO / 'data' / 'batch_5k.jsonl'}",
        "--model=gemma-270m",
        "--mode=offline",
        "--limit=3",
        "--benchmark-save=inside",
        "--report=none",
    )
    assert result.ret == 0, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines(["gemma-270m-offline: 3/3 requests*"])
    assert (pytester.path / "workers.txt").read_text() == "1\n"
    [run] = saved_runs(pytester.path)  # pytest-benchmark, too, took the variables for xdist and saved nothing
    assert [bench["name"] for bench in json.loads(run.read_text())["benchmarks"]] == ["test_batch[gemma-270m-offline]"]
