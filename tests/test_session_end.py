"""The session's end without pytest: score, baseline, gates, report and summary on saved-run fixtures."""

import math
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from saved_runs import cell, save_run

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.config.settings import merge_sources, resolve
from pytest_vllmbench.measure.cell_record import CellResult
from pytest_vllmbench.pytest_plugin.session_end import (
    ReportNotWritten,
    SessionEnd,
    check_paths,
    has_answer_to_save,
)
from pytest_vllmbench.results.storage import describe_machine
from pytest_vllmbench.run.interleave import ROUND_SUFFIX

REPO = Path(__file__).resolve().parents[1]
MACHINE = describe_machine({"cpu": {"brand_raw": "Test CPU", "count": 2}, "vllmbench": {"gpus": []}})


def _end(unrun=None, project_scorer=lambda cells: None, **options):
    settings = resolve(merge_sources({"model": ["gemma-270m"], **options}, {}, {}), REPO)
    warnings = []
    return SessionEnd(settings, unrun if unrun is not None else [], project_scorer, warnings.append), warnings


def test_the_built_in_score_ranks_faster_cells_higher_and_never_sees_nan():
    seen = []
    end, _ = _end(project_scorer=lambda cells: seen.extend(cells))
    fast, slow = cell("a-offline", requests_per_s=4.0), cell("b-offline", requests_per_s=1.0, ttft_ms_p99=math.nan)
    scores = end.score([fast, slow])
    assert scores[0]["score"] > scores[1]["score"]
    assert [c["ttft_ms_p99"] for c in seen] == [200.0, None]  # what the project's hook was shown


def test_the_built_in_score_takes_a_rounds_cell_at_its_rounds_mean_as_the_report_does():
    def rounds(name, *rates):  # a run saves its last round's rate as its own
        stats = {"n": len(rates), "mean": sum(rates) / len(rates), "ci95_half": 1.0}
        return cell(
            name,
            requests_per_s=rates[-1],
            rounds=[{"requests_per_s": r} for r in rates],
            round_stats={"requests_per_s": stats},
        )

    end, _ = _end()
    steady, slow_end = rounds("a-offline", 3.0, 3.0, 3.0), rounds("b-offline", 4.0, 4.0, 2.5)
    scores = end.score([steady, slow_end])
    assert scores[1]["score"] > scores[0]["score"]  # 3.5 against 3.0 on the means; before, 2.5 against 3.0


def test_the_projects_scorer_wins_over_the_built_in_one():
    end, _ = _end(project_scorer=lambda cells: [{"score": 0.5, "components": {}} for _ in cells])
    assert [s["score"] for s in end.score([cell(), cell("gemma-270m-server")])] == [0.5, 0.5]


def test_the_saved_json_carries_each_cells_score_and_the_unrun_cells():
    unrun = [CellResult.given({"cell": "gemma-270m-server", "status": "does not fit: too big"})]
    end, _ = _end(unrun)
    output = {"benchmarks": [{"extra_info": cell()}, {"extra_info": {"plain": 1}}]}
    end.score_saved_json(output)
    assert (
        output["benchmarks"][0]["extra_info"]["score"] == output["vllmbench"]["scores"]["gemma-270m-offline"]["score"]
    )
    assert "score" not in output["benchmarks"][1]["extra_info"]
    assert output["vllmbench"]["unrun"] == [{"cell": "gemma-270m-server", "status": "does not fit: too big"}]
    assert output["vllmbench"]["weights"] == end.settings.weights
    untouched = {"benchmarks": [{"extra_info": {"plain": 1}}]}
    _end()[0].score_saved_json(untouched)
    assert "vllmbench" not in untouched


def test_the_latest_baseline_is_this_machines_newest_run_and_a_broken_file_is_a_warning(tmp_path):
    save_run(tmp_path, 1, "old", [cell(requests_per_s=2.0)], when="2026-11-28T10:00:00")
    save_run(tmp_path, 2, "new", [cell(requests_per_s=3.0)], when="2026-11-29T10:00:00")
    save_run(tmp_path, 3, "gpu", [cell()], when="2026-11-30T10:00:00", gpus=["NVIDIA H200"], machine_id="gpu")
    (tmp_path / "gpu" / "0004_broken.json").write_text("{not json")
    end, warnings = _end(vllmbench_gate=["requests_per_s:-5%"])
    end.pick_baseline(tmp_path, MACHINE)
    assert end.baseline is not None and end.baseline.name == "0002_new"
    assert len(warnings) == 1 and "0004_broken.json" in warnings[0]


def test_a_named_baseline_that_is_not_saved_is_a_usage_error_naming_the_storage(tmp_path):
    save_run(tmp_path, 1, "base", [cell()])
    end, _ = _end(vllmbench_gate=["requests_per_s:-5%"], vllmbench_baseline="basse")
    with pytest.raises(UsageError, match=f"--vllmbench-baseline=basse: no saved run.*under {re.escape(str(tmp_path))}"):
        end.pick_baseline(tmp_path, MACHINE)


def test_gates_compare_the_scored_current_cells_with_the_baseline(tmp_path):
    save_run(tmp_path, 1, "base", [cell(requests_per_s=2.0), cell("gemma-270m-server", requests_per_s=2.0)])
    unrun = [
        CellResult.given(
            {"cell": "gemma-270m-server", "model": "gemma-270m", "mode": "server", "status": "failed: died"}
        )
    ]
    end, _ = _end(unrun, vllmbench_gate=["requests_per_s:-5%"])
    end.pick_baseline(tmp_path, MACHINE)
    current = end.current_cells([cell(requests_per_s=1.0), {"plain": "benchmark"}])
    assert set(current) == {"gemma-270m-offline", "gemma-270m-server"} and "score" in current["gemma-270m-offline"]
    verdict = end.run_gates(current)
    assert verdict.failed and verdict.baseline == Path("Linux-CPython-3.11-64bit/0001_base.json")
    kinds = {(check.cell, check.kind) for check in verdict.checks}
    assert ("gemma-270m-offline", "regression") in kinds and ("gemma-270m-server", "missing data") in kinds
    assert "gates:" in end.summary(current)


def test_without_a_baseline_the_gates_compare_nothing_and_do_not_fail(tmp_path):
    end, _ = _end(vllmbench_gate=["requests_per_s:-5%"])
    end.pick_baseline(tmp_path, MACHINE)
    verdict = end.run_gates(end.current_cells([cell()]))
    assert verdict.baseline is None and verdict.checks == [] and not verdict.failed
    assert "no baseline run" in end.summary(end.current_cells([cell()]))


def test_the_summary_names_the_saved_run_and_the_report_it_was_given(tmp_path):
    end, _ = _end()
    current = end.current_cells([cell()])
    assert "run saved in" not in end.summary(current)
    end.saved_run, end.report = tmp_path / "0001_x.json", tmp_path / "BENCHMARKS.md"
    text = end.summary(current)
    assert f"run saved in {tmp_path / '0001_x.json'}" in text and f"report regenerated: {end.report}" in text
    assert end.summary({}) == ""


def test_the_report_is_regenerated_from_the_storage_or_refused_without_touching_a_hand_written_file(tmp_path):
    save_run(tmp_path / "runs", 1, "base", [cell()])
    out = tmp_path / "BENCHMARKS.md"
    end, _ = _end(report=str(out))
    assert end.write_report(tmp_path / "runs") == out and end.report == out
    assert "gemma-270m-offline" in out.read_text()
    out.write_text("# ours\n")
    with pytest.raises(ReportNotWritten, match=re.escape(str(out))):
        _end(report=str(out))[0].write_report(tmp_path / "runs")
    assert out.read_text() == "# ours\n"


@given(st.lists(st.sampled_from(["failed: x", "skipped: y", "does not fit: z", ""]), max_size=4))
def test_only_cells_that_did_not_fail_are_an_answer_worth_saving(statuses):
    unrun = [CellResult.given({"cell": f"c{i}", "status": status}) for i, status in enumerate(statuses)]
    assert has_answer_to_save(unrun) == any(not status.startswith("failed") for status in statuses)


def test_paths_are_tried_before_any_engine_and_storage_only_when_saving(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    end, _ = _end(report="none")
    check_paths(end.settings, blocker / "runs", saving=False)
    with pytest.raises(
        UsageError, match=re.escape(f"benchmark storage {blocker / 'runs'}: {blocker} is not a writable folder")
    ):
        check_paths(end.settings, blocker / "runs", saving=True)
    outputs, _ = _end(write_outputs=str(blocker / "out"))
    with pytest.raises(UsageError, match="--write-outputs"):
        check_paths(outputs.settings, None, saving=False)


def test_a_cell_measured_in_two_tests_is_gated_copy_by_copy_against_a_baseline_that_has_both(tmp_path):
    """The saved baseline keeps both copies (`id #2`): this run's must too, or its second copy goes missing."""
    save_run(tmp_path, 1, "base", [cell(requests_per_s=2.0), cell(requests_per_s=8.0)])
    end, _ = _end(vllmbench_gate=["requests_per_s:-5%"])
    end.pick_baseline(tmp_path, MACHINE)
    current = end.current_cells([cell(requests_per_s=2.0), cell(requests_per_s=8.0)], ["gemma-270m-offline"] * 2)
    assert [c.requests_per_s for c in current.values()] == [2.0, 8.0]
    verdict = end.run_gates(current)
    assert not verdict.failed and {check.cell for check in verdict.checks} == {
        "gemma-270m-offline",
        "gemma-270m-offline #2",
    }


def test_a_cells_interleaved_round_tests_count_as_the_one_with_every_round():
    end, _ = _end()
    rounds = [{"requests_per_s": 1.0}, {"requests_per_s": 1.2}]
    tests = [cell(rounds=rounds[:1]), cell("gemma-270m-server"), cell(rounds=rounds, requests_per_s=1.1)]
    ids = [f"gemma-270m-offline{ROUND_SUFFIX}1", "gemma-270m-server", f"gemma-270m-offline{ROUND_SUFFIX}2"]
    current = end.current_cells(tests, ids)
    assert list(current) == ["gemma-270m-offline", "gemma-270m-server"]
    assert current["gemma-270m-offline"].requests_per_s == 1.1
