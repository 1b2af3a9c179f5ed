"""pytest-xdist: workers measure, the controller saves ONE merged run; a crashed worker loses only its cells."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.pytest_plugin.xdist_workers import gpus_for_worker

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
    result = pytester.runpytest_subprocess(*loading, "-n", "2", "--benchmark-save=merged", "--report=none")
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
    result = pytester.runpytest_subprocess("-n", "2", "--benchmark-save=crash", "--report=none")
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
