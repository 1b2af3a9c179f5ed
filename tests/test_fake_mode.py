"""A mode is one file plus one registration: a FAKE mode from tests/ runs through a whole pytest session (matrix,
sweep, engine start, figures, saved JSON, score, report) with nothing else changed in the package."""

import json
from pathlib import Path

import pytest
from bench_project import bench_project

from pytest_vllmbench.config.modes import FLEXIBILITY, mode_names
from pytest_vllmbench.results.scoring import score_cells
from tests.fake_mode import FAKE_MODE

REGISTER_FAKE_MODE = f"""
import sys

sys.path.insert(0, {str(Path(__file__).parent)!r})
from fake_mode import FAKE_MODE
from pytest_vllmbench.config.modes import register

register(FAKE_MODE)
"""


def fake_mode_project(pytester, conftest_extra: str = "") -> None:
    """The batch test, the 5K sample and a local model folder (nothing to download, nothing to load), with the fake
    mode registered by the project's conftest (plus `conftest_extra`)."""
    bench_project(pytester)
    (pytester.path / "my-model").mkdir()
    pytester.makeconftest(REGISTER_FAKE_MODE + conftest_extra)


def test_a_fake_mode_registered_from_tests_runs_through_a_whole_session(pytester):
    assert FAKE_MODE.name not in mode_names()  # the package knows nothing of it
    fake_mode_project(pytester)
    result = pytester.runpytest_subprocess(
        "benchmarks",
        "-p",
        "no:cacheprovider",
        "--model=my-model",
        f"--mode={FAKE_MODE.name}",
        "--concurrency=1,2",
        "--limit=4",
        "--benchmark-save=fake",
    )
    output = result.stdout.str()
    assert result.ret == pytest.ExitCode.OK, output[-3000:]
    result.assert_outcomes(passed=2)  # one cell per load point: the mode sweeps
    [path] = (pytester.path / ".benchmarks").glob("*/*_fake.json")
    cells = {b["extra_info"]["cell"]: b["extra_info"] for b in json.loads(path.read_text())["benchmarks"]}
    assert set(cells) == {"my-model-fake-echo-c1", "my-model-fake-echo-c2"}
    for point, cell in (("c1", cells["my-model-fake-echo-c1"]), ("c2", cells["my-model-fake-echo-c2"])):
        assert cell["mode"] == FAKE_MODE.name and cell["engine"]["name"] == "fake-echo"
        assert cell["n_requests"] == 4 and cell["n_failed"] == 0 and cell["output_tokens"] == 16
        assert cell["load"]["point"] == point and cell["timing"] == f"FAKE: answered at once, load point {point}"
        assert cell["engine_args"] == {} or isinstance(cell["engine_args"], dict)
    # the score took the mode's own flexibility (the ModeSpec's, not a silent 0)
    both = list(cells.values())
    with_spec = score_cells(both, flexibility={FAKE_MODE.name: FAKE_MODE.flexibility})
    without = score_cells(both, flexibility={FAKE_MODE.name: 0.0})
    assert [cell["score"] for cell in both] == [scored["score"] for scored in with_spec]
    assert [scored["score"] for scored in with_spec] != [scored["score"] for scored in without]
    assert "my-model-fake-echo-c1" in (pytester.path / "BENCHMARKS.md").read_text()


def test_a_mode_cannot_be_declared_without_a_flexibility_or_a_start():
    with pytest.raises(TypeError):
        FAKE_MODE.__class__("fake-without-flexibility", start="fake_mode:start")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="flexibility must be a number in"):
        FAKE_MODE.__class__("fake-out-of-range", flexibility=1.5, start="fake_mode:start")
    with pytest.raises(ValueError, match="start must read 'module:function'"):
        FAKE_MODE.__class__("fake-no-start", flexibility=0.5, start="fake_mode")


def test_every_registered_mode_has_its_flexibility_in_the_score():
    assert set(FLEXIBILITY) == set(mode_names()) and all(0 <= FLEXIBILITY[name] <= 1 for name in mode_names())


def test_a_quality_hook_that_returns_an_undeclared_figure_fails_the_cell_saying_which(pytester):
    """The hook's figures used to be saved unchecked: an undeclared one went into the saved run."""
    fake_mode_project(
        pytester,
        "\n\ndef pytest_vllmbench_quality(cell_id, requests, records, gold):\n"
        + "    return {'quality_accuracy': 0.5, 'quality_house_style': 0.9}\n",
    )
    result = pytester.runpytest_subprocess(
        "benchmarks", "-p", "no:cacheprovider", "--model=my-model", f"--mode={FAKE_MODE.name}", "--limit=2"
    )
    output = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output[-3000:]
    assert (
        "my-model-fake-echo: the pytest_vllmbench_quality hook returned figure(s) ['quality_house_style'] that "
        "CellRecord does not declare" in output
    )
    assert "Traceback" not in output
