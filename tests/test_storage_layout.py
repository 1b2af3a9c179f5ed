"""A run file outside any machine folder is named in a warning, never passed over in silence (red-team finding 4):
pytest-benchmark saves runs as STORAGE/MACHINE_ID/NNNN_name.json, and the scanner reads only that layout."""

import os

from saved_runs import cell, save_run

from pytest_vllmbench.results.storage import scan_runs


def test_a_run_at_the_storage_root_is_named_in_a_warning_saying_where_runs_live(tmp_path):
    storage = tmp_path / ".benchmarks"
    kept = save_run(storage, 1, "a", [cell()])
    stray = storage / "0011_top.json"
    stray.write_bytes(kept.read_bytes())
    runs, skipped = scan_runs(storage)
    assert [run.name for run in runs] == ["0001_a"]
    assert skipped == [
        f"{stray}: skipped: not in a machine folder; pytest-benchmark saves runs as "
        "STORAGE/MACHINE_ID/NNNN_name.json: move it into its machine's folder"
    ]


def test_only_files_named_like_runs_at_the_root_are_warned_about(tmp_path):
    storage = tmp_path / ".benchmarks"
    save_run(storage, 1, "a", [cell()])
    (storage / "notes.json").write_text("{}")
    (storage / "12_short.json").write_text("{}")
    (storage / "0002_folder.json").mkdir()
    assert scan_runs(storage)[1] == []


def test_a_root_run_whose_name_breaks_lines_is_named_on_one_line(tmp_path):
    storage = tmp_path / ".benchmarks"
    storage.mkdir()
    (storage / "0003_x\nINJECTED.json").write_text("{}")
    os.mkfifo(storage / "0004_fifo.json")  # named only, never opened
    skipped = scan_runs(storage)[1]
    assert len(skipped) == 2 and all("\n" not in warning for warning in skipped)
    assert "0003_x INJECTED.json: skipped: not in a machine folder" in skipped[0]
    assert "0004_fifo.json: skipped: not in a machine folder" in skipped[1]
