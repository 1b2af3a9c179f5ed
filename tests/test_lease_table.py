"""benchmarks/scripts/lease_table.py: a lease's rows for measurements.md, from the saved runs, in the order asked."""

import importlib.util
from pathlib import Path

import pytest
from saved_runs import cell, save_run

from pytest_vllmbench.measure.rounds import interval
from pytest_vllmbench.results.storage import load_runs

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "scripts" / "lease_table.py"
spec = importlib.util.spec_from_file_location("lease_table", SCRIPT)
assert spec and spec.loader
lease_table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lease_table)


def _with_rounds(name: str, rates: list[float], **figures: object) -> dict[str, object]:
    rounds = [{"requests_per_s": rate, "ttft_ms_p50": 2000.0} for rate in rates]
    stats = {"requests_per_s": interval(rates), "ttft_ms_p50": interval([2000.0] * len(rates))}
    return cell(name, rounds=rounds, round_stats=stats, requests_per_s=rates[-1], **figures)


def test_rows_follow_the_order_asked_with_each_runs_own_rounds(tmp_path):
    save_run(tmp_path, 1, "s", [_with_rounds("m-server", [48.0, 50.0, 52.0], cpu_api_server_pct=81.0)])
    save_run(tmp_path, 2, "o", [_with_rounds("m-offline", [60.0, 61.0, 62.0], preempted_pct=3.5)])
    lines = lease_table.table(load_runs(tmp_path), ["0002", "0001"]).splitlines()
    assert lines[0].startswith("| Order | Run | Cell | Rounds req/s |") and len(lines) == 4
    offline, server = lines[2].split(" | "), lines[3].split(" | ")
    assert offline[:4] == ["| 1", "`0002`", "m-offline", "60.0, 61.0, 62.0"] and offline[4] == "61.0 ± 2.5"
    assert offline[6] == "2.0 s" and offline[11] == "3.5"
    assert server[:3] == ["| 2", "`0001`", "m-server"] and server[8] == "81"


def test_a_run_number_not_saved_is_named_and_nothing_is_printed(tmp_path, capsys):
    save_run(tmp_path, 1, "s", [cell()])
    with pytest.raises(SystemExit, match="no saved run numbered 0007"):
        lease_table.main(["1", "7", "--storage", str(tmp_path)])
    assert capsys.readouterr().out == ""


def test_a_run_number_that_is_no_number_is_a_usage_error_not_a_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        lease_table.main(["57x", "--storage", str(tmp_path)])
    assert stopped.value.code == 2 and "invalid run_number value: '57x'" in capsys.readouterr().err
