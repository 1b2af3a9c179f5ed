from pytest_vllmbench.report import render, write_report
from pytest_vllmbench.storage import load_runs

from saved_runs import cell, save_run


def test_report_shows_the_newest_cell_per_machine_and_every_run(tmp_path):
    save_run(tmp_path, 1, "old", [cell(requests_per_s=1.0)], when="2026-11-28T10:00:00")
    save_run(tmp_path, 2, "new", [cell(requests_per_s=2.5), cell("gemma-270m-server", requests_per_s=2.0)])
    save_run(tmp_path, 1, "gpu", [cell("gemma-12b-offline", requests_per_s=17.7, peak_vram_mib=120000)],
             gpus=["NVIDIA H200"], machine_id="gpu-box")
    (tmp_path / MACHINE).mkdir(exist_ok=True)
    (tmp_path / MACHINE / "0009_junk.json").write_text("not json")
    runs = load_runs(tmp_path)
    assert [r.name for r in runs] == ["0001_old", "0002_new", "0001_gpu"]
    text = render(runs)
    matrix = text.split("## Test matrix")[1].split("## Results by machine")[0]
    assert "| 2.50 " in matrix and "| 1.00 " not in matrix
    assert "1 x NVIDIA H200" in text and "120000" in text
    assert "### Test CPU (2 cores, no GPU)" in text
    runs_section = text.split("## Runs")[1]
    assert runs_section.count("gemma-270m-offline") == 2
    assert "gemma-12b-offline at 17.70 req/s" in text


MACHINE = "Linux-CPython-3.11-64bit"


def test_hand_written_sections_survive_regeneration(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    storage = tmp_path / ".benchmarks"
    save_run(storage, 1, "a", [cell()])
    write_report(storage, out)
    edited = out.read_text().replace(
        "_Key decisions and learnings, dated. Written by hand; regeneration keeps it._",
        "### Decision 1\nOffline wins for pure batch work.",
    ) + "\n<!-- vllmbench:hand-written extra -->\nmy own table\n<!-- /vllmbench:hand-written extra -->\n"
    out.write_text(edited)
    save_run(storage, 2, "b", [cell(requests_per_s=3.0)])
    text = write_report(storage, out).read_text()
    assert "Offline wins for pure batch work." in text and "my own table" in text
    assert "| 3.00 " in text
    assert not list(tmp_path.glob(".BENCHMARKS.md*"))  # no temp file left behind


def test_empty_storage_says_how_to_start(tmp_path):
    assert "No saved runs yet" in render(load_runs(tmp_path / "missing"))
