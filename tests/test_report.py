import json
import math

import pytest
from saved_runs import cell, save_run

from pytest_vllmbench.cli import main
from pytest_vllmbench.results.report import ReportRefused, render, write_report
from pytest_vllmbench.results.storage import load_runs


def test_report_shows_the_newest_cell_per_machine_and_every_run(tmp_path):
    save_run(tmp_path, 1, "old", [cell(requests_per_s=1.0)], when="2026-11-28T10:00:00")
    save_run(tmp_path, 2, "new", [cell(requests_per_s=2.5), cell("gemma-270m-server", requests_per_s=2.0)])
    save_run(
        tmp_path,
        1,
        "gpu",
        [cell("gemma-12b-offline", requests_per_s=17.7, peak_vram_mib=120000)],
        gpus=["NVIDIA H200"],
        machine_id="gpu-box",
    )
    (tmp_path / MACHINE).mkdir(exist_ok=True)
    (tmp_path / MACHINE / "0009_junk.json").write_text("not json")
    runs = load_runs(tmp_path)
    assert [r.name for r in runs] == ["0001_old", "0002_new", "0001_gpu"]
    text = render(runs)
    matrix = text.split("## Test matrix")[1].split("## Results by machine")[0]
    assert "| 2.50 " in matrix and "| 1.00 " not in matrix
    assert "1 x NVIDIA H200" in text and "120,000" in text
    assert "### Test CPU (2 cores, no GPU)" in text
    history = text.split("## History")[1]
    assert history.count("gemma-270m-offline") == 2 and "superseded by 0002" in history
    assert "gemma-12b-offline on 1 x NVIDIA H200 at 17.70 req/s" in text


MACHINE = "Linux-CPython-3.11-64bit"


def test_a_ray_cell_with_more_replicas_is_its_own_cell_not_a_newer_run_of_one_replica(tmp_path):
    one = cell("gemma-270m-ray", requests_per_s=1.38, engine_args={"ray_replicas": 1})
    two = cell("gemma-270m-ray", requests_per_s=1.20, engine_args={"ray_replicas": 2})
    save_run(tmp_path, 1, "one-replica", [one], when="2026-12-04T10:00:00")
    save_run(tmp_path, 2, "two-replicas", [two], when="2026-12-04T11:00:00")
    matrix = render(load_runs(tmp_path)).split("## Test matrix")[1].split("## Results by machine")[0]
    assert "| 1.38 " in matrix and "| 1.20 " in matrix
    assert "gemma-270m (replicas 2)" in matrix


def test_hand_written_sections_survive_regeneration(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    storage = tmp_path / ".benchmarks"
    save_run(storage, 1, "a", [cell()])
    write_report(storage, out)
    edited = (
        out.read_text().replace(
            "_Key decisions and learnings, dated. Written by hand; regeneration keeps it._",
            "### Decision 1\nOffline wins for pure batch work.",
        )
        + "\n<!-- vllmbench:hand-written extra -->\nmy own table\n<!-- /vllmbench:hand-written extra -->\n"
    )
    out.write_text(edited)
    save_run(storage, 2, "b", [cell(requests_per_s=3.0)])
    text = write_report(storage, out).read_text()
    assert "Offline wins for pure batch work." in text and "my own table" in text
    assert "| 3.00 " in text
    assert not list(tmp_path.glob(".BENCHMARKS.md*"))  # no temp file left behind


def test_empty_storage_says_how_to_start(tmp_path):
    assert "No saved runs yet" in render(load_runs(tmp_path / "missing"))


def _report_with(tmp_path, extra: str = "") -> tuple:
    out, storage = tmp_path / "BENCHMARKS.md", tmp_path / ".benchmarks"
    save_run(storage, 1, "a", [cell()])
    write_report(storage, out)
    text = out.read_text().replace(
        "_Key decisions and learnings, dated. Written by hand; regeneration keeps it._", "We chose offline."
    )
    out.write_text(text + extra)
    return out, storage


@pytest.mark.parametrize(
    ("damage", "line_of", "message"),
    [
        (
            lambda t: t.replace("<!-- /vllmbench:hand-written decisions -->", ""),
            "<!-- vllmbench:hand-written decisions",
            "never closed",
        ),
        (
            lambda t: t.replace(
                "<!-- /vllmbench:hand-written decisions -->", "<!-- /vllmbench:hand-written decision -->"
            ),
            "<!-- /vllmbench:hand-written decision -->",
            "closes section 'decision'",
        ),
        (
            lambda t: t + "\n<!-- vllmbench:hand-written intro -->\nagain\n<!-- /vllmbench:hand-written intro -->\n",
            "again",
            "appears twice",
        ),
        (
            lambda t: t.replace(
                "<!-- vllmbench:hand-written decisions -->", "<!-- vllmbench:handwritten decisions -->"
            ),
            "<!-- vllmbench:handwritten decisions -->",
            "malformed",
        ),
    ],
    ids=["unclosed", "renamed", "duplicated", "misspelt"],
)
def test_a_damaged_marker_refuses_regeneration_naming_the_line(tmp_path, capsys, damage, line_of, message):
    out, storage = _report_with(tmp_path)
    damaged = damage(out.read_text())
    out.write_text(damaged)
    lines = damaged.splitlines()
    number = next(i for i, line in enumerate(lines, start=1) if line_of in line)
    if message == "appears twice":
        number -= 1  # the duplicate opening marker, just above its body
    with pytest.raises(ReportRefused, match=f"{out}:{number}: .*{message}"):
        write_report(storage, out)
    assert main(["report", "--storage", str(storage), "--out", str(out)]) == 2
    assert f"{out}:{number}:" in capsys.readouterr().err
    assert out.read_text() == damaged  # untouched: "We chose offline." is still there


def test_a_report_this_tool_did_not_write_is_never_overwritten(tmp_path, capsys):
    out, storage = tmp_path / "BENCHMARKS.md", tmp_path / ".benchmarks"
    save_run(storage, 1, "a", [cell()])
    out.write_text("# Ours\n")
    assert main(["report", "--storage", str(storage), "--out", str(out)]) == 2
    assert "was not generated by pytest-vllmbench" in capsys.readouterr().err
    assert out.read_text() == "# Ours\n"


def test_unreadable_and_wrong_shaped_runs_are_skipped_with_a_warning(tmp_path, capsys):
    out, storage = _report_with(tmp_path)
    save_run(storage, 2, "good", [cell(requests_per_s=3.25)])
    shape = save_run(storage, 3, "shape", [cell(requests_per_s="fast")], when="2026-11-28T10:00:00")  # read in part
    wrong = [shape, save_run(storage, 4, "list", [cell()])]
    wrong[1].write_text(json.dumps({"benchmarks": {"not": "a list"}}))
    (storage / MACHINE / "0005_broken.json").write_text("{not json")
    (storage / MACHINE / "0006_dir.json").mkdir()
    assert main(["report", "--storage", str(storage), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for name, why in [
        ("0003_shape", "benchmark 1: field 'requests_per_s' dropped: it is not a number"),
        ("0004_list", "no 'benchmarks' list"),
        ("0005_broken", "not JSON"),
        ("0006_dir", "cannot read it"),
    ]:
        [line] = [line for line in err.splitlines() if f"{name}.json: " in line]
        assert why in line
    text = out.read_text()
    assert "| 3.25 " in text and "We chose offline." in text


def test_a_missing_or_empty_storage_never_blanks_a_report_that_shows_runs(tmp_path, capsys):
    out, _ = _report_with(tmp_path)
    shown = out.read_text()
    for storage in (tmp_path / "typo", tmp_path / "empty"):
        (tmp_path / "empty").mkdir(exist_ok=True)
        assert main(["report", "--storage", str(storage), "--out", str(out)]) == 3
        assert "shows saved runs: not blanking it" in capsys.readouterr().err
        assert out.read_text() == shown
    assert main(["report", "--storage", str(tmp_path / "empty"), "--out", str(out), "--allow-empty"]) == 0
    assert "No saved runs yet" in out.read_text() and "We chose offline." in out.read_text()


def test_nan_figures_show_as_missing_and_leave_other_scores_alone(tmp_path):
    storage = tmp_path / ".benchmarks"
    save_run(
        storage,
        1,
        "a",
        [
            cell(requests_per_s=math.nan, projected_hours=math.inf),
            cell("gemma-270m-server", requests_per_s=2.0, projected_hours=24.0),
        ],
    )
    text = render(load_runs(storage))
    assert "nan" not in text.lower() and "inf" not in text.replace("Info", "")
    ranking = text.split("## Ranking")[1].split("## Parity")[0]
    server = next(line for line in ranking.splitlines() if "gemma-270m-server" in line)
    assert "| 1.00 " in server  # best throughput and total time of the group: NaN did not become the best


def test_a_marker_line_with_trailing_spaces_still_keeps_its_section(tmp_path):
    out, storage = _report_with(tmp_path)
    marker = "<!-- vllmbench:hand-written decisions -->"
    out.write_text(out.read_text().replace(marker, marker + "  "))
    write_report(storage, out)
    assert "We chose offline." in out.read_text()


def test_marker_text_inside_a_sentence_does_not_make_a_file_ours(tmp_path):
    readme, storage = tmp_path / "README.md", tmp_path / ".benchmarks"
    save_run(storage, 1, "a", [cell()])
    text = "# My project\n\nBENCHMARKS.md starts with `<!-- Generated by pytest-vllmbench ... -->`.\n" * 50
    readme.write_text(text)
    with pytest.raises(ReportRefused, match="was not generated by pytest-vllmbench"):
        write_report(storage, readme)
    assert readme.read_text() == text


def test_a_section_quoting_the_closing_marker_mid_line_survives_whole(tmp_path):
    out, storage = _report_with(tmp_path)
    quoted = "We chose offline; sections end with `<!-- /vllmbench:hand-written decisions -->` lines.\nMore text.\n"
    out.write_text(out.read_text().replace("We chose offline.\n", quoted))
    write_report(storage, out)
    write_report(storage, out)
    assert quoted in out.read_text()


def test_prose_that_mentions_the_marker_syntax_is_not_a_marker(tmp_path):
    out, storage = _report_with(tmp_path)
    mention = "We chose offline. Sections use `<!-- vllmbench:hand-written NAME -->`."
    text = out.read_text().replace("We chose offline.", mention)
    out.write_text(text)
    assert "Sections use" in write_report(storage, out).read_text()


def _matrix_and_history(text):
    return text.split("## Test matrix")[1].split("## Results by machine")[0], text.split("## History")[1]


def test_a_run_holding_one_cell_twice_shows_both_copies_until_a_newer_run_holds_it(tmp_path):
    """Two tests of one cell in one run: the report showed only the last copy (the gate already kept both)."""
    save_run(tmp_path, 1, "twice", [cell(requests_per_s=1.11), cell(requests_per_s=2.22)], when="2026-12-06T10:00:00")
    matrix, history = _matrix_and_history(render(load_runs(tmp_path)))
    assert "| 1.11 " in matrix and "| 2.22 " in matrix
    assert "gemma-270m (copy 2)" in matrix
    assert history.count("| current |") == 2 and "superseded by" not in history

    save_run(tmp_path, 2, "once", [cell(requests_per_s=3.33)], when="2026-12-06T11:00:00")
    matrix, history = _matrix_and_history(render(load_runs(tmp_path)))
    assert "| 3.33 " in matrix and "| 1.11 " not in matrix and "| 2.22 " not in matrix and "copy 2" not in matrix
    assert history.count("superseded by 0002") == 2 and "gemma-270m-offline (copy 2)" in history


def test_an_unrun_entry_beside_a_measured_copy_of_its_cell_does_not_hide_it(tmp_path):
    failed = cell(status="failed: engine died", requests_per_s=None)
    save_run(tmp_path, 1, "both", [cell(requests_per_s=1.11), failed])
    matrix, history = _matrix_and_history(render(load_runs(tmp_path)))
    assert "| 1.11 " in matrix and "failed" not in matrix
    failed_row = next(row for row in history.splitlines() if "failed: engine died" in row)
    assert failed_row.rstrip(" |").endswith("superseded by 0001")  # by its run's measured copy, not 'current'
