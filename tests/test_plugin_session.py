"""The session object's pytest side, driven through real pytest runs: which run it names and when it gates."""

import json
import os
import time
from pathlib import Path

import pytest
from fake_cells import FAKE_BATCH

REPO_DATA = Path(__file__).resolve().parents[1] / "data" / "batch_5k.jsonl"
CELLS = ["--model=gemma-270m", "--mode=offline", "--mode=server", "--limit=2", "--report=none"]


@pytest.fixture
def fake(pytester):
    pytester.makepyfile(test_batch=FAKE_BATCH)
    (pytester.path / "data").mkdir()
    (pytester.path / "data" / "batch_5k.jsonl").symlink_to(REPO_DATA)
    return pytester


def _unrelated_fresh_run(root: Path) -> Path:
    """Another machine's run in the same storage, modified after this session saves (a copy, a sync, a touch)."""
    other = root / "Other-machine" / "0007_elsewhere.json"
    other.parent.mkdir(parents=True)
    other.write_text(json.dumps({"benchmarks": [], "machine_info": {}, "datetime": "2026-01-01T00:00:00"}))
    later = time.time() + 3600
    os.utime(other, (later, later))
    return other


def test_the_summary_names_the_run_pytest_benchmark_saved_not_the_newest_file(fake):
    other = _unrelated_fresh_run(fake.path / ".benchmarks")
    result = fake.runpytest(*CELLS, "--benchmark-save=mine")
    assert result.ret == 0, result.stdout.str()
    [mine] = (fake.path / ".benchmarks").glob("*/*_mine.json")
    summary = [line for line in result.outlines if line.startswith("run saved in ")]
    assert summary == [f"run saved in {mine}"]
    assert other.name not in result.stdout.str()


def test_a_session_that_saves_nothing_names_no_saved_run(fake):
    _unrelated_fresh_run(fake.path / ".benchmarks")
    result = fake.runpytest(*CELLS)
    assert result.ret == 0, result.stdout.str()
    assert "run saved in" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*vllmbench summary*"])


def test_collect_only_with_a_gate_runs_no_gate(fake):
    assert fake.runpytest(*CELLS, "--benchmark-save=base").ret == 0
    result = fake.runpytest(*CELLS, "--collect-only", "--vllmbench-gate=requests_per_s:-5%")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert "vllmbench gate" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*test_batch*gemma-270m-offline*", "*test_batch*gemma-270m-server*"])
