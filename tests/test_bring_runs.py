"""benchmarks/scripts/bring_runs.py: two device calls' runs with one number land under two free numbers here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "scripts" / "bring_runs.py"
spec = importlib.util.spec_from_file_location("bring_runs", SCRIPT)
assert spec is not None and spec.loader is not None
bring_runs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bring_runs)


def _call(folder: Path, run: str, log: str, content: str = "{}") -> Path:
    (folder / "runs").mkdir(parents=True)
    (folder / "runs" / run).write_text(content)
    (folder / log).write_text(log)
    return folder


def test_runs_numbered_alike_by_two_calls_get_the_next_free_numbers_and_are_brought_once(tmp_path):
    storage = tmp_path / "store"
    storage.mkdir()
    (storage / "0022_h100-seed-both.json").write_text("{}")
    first = _call(tmp_path / "a", "0023_h200-seed-server.json", "server.log")
    second = _call(tmp_path / "b", "0023_h200-seed-offline.json", "offline.log")
    assert bring_runs.bring_runs(first, storage) == ["0023_h200-seed-server.json"]
    assert bring_runs.bring_runs(second, storage) == ["0024_h200-seed-offline.json"]
    assert bring_runs.bring_runs(second, storage) == []  # already here
    assert sorted(path.name for path in storage.iterdir()) == [
        "0022_h100-seed-both.json",
        "0023_h200-seed-server.json",
        "0024_h200-seed-offline.json",
    ]


def test_a_second_run_of_the_same_name_is_brought_under_a_new_number(tmp_path):
    storage = tmp_path / "store"
    first = _call(tmp_path / "a", "0023_h200-seed-offline.json", "a.log", '{"datetime": "12:35"}')
    again = _call(tmp_path / "b", "0023_h200-seed-offline.json", "b.log", '{"datetime": "12:45"}')
    assert bring_runs.bring_runs(first, storage) == ["0001_h200-seed-offline.json"]
    assert bring_runs.bring_runs(again, storage) == ["0002_h200-seed-offline.json"]
    assert (storage / "0002_h200-seed-offline.json").read_text() == '{"datetime": "12:45"}'


def test_a_log_never_overwrites_one_already_here(tmp_path, capsys):
    call = _call(tmp_path / "a", "0001_x.json", "server.log")
    kept = tmp_path / "results" / "h200" / "server.log"
    kept.parent.mkdir(parents=True)
    kept.write_text("an earlier call's log")
    assert bring_runs.bring_logs(call, "h200", tmp_path / "results") == []
    assert kept.read_text() == "an earlier call's log"
    assert "kept the existing" in capsys.readouterr().err
