"""A report-time GPU price for saved runs that carry none (`vllmbench report --gpu-hourly-cost`, [tool.vllmbench])."""

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from saved_runs import cell as saved_figures
from saved_runs import save_run

from pytest_vllmbench import cli
from pytest_vllmbench.results.report_price import MARK, ReportPrice, price_cell, price_runs
from pytest_vllmbench.results.saved_run import SavedCell
from pytest_vllmbench.results.storage import load_runs

H200 = ["NVIDIA H200"]


def cell(name: str, **figures):
    return SavedCell.of(saved_figures(name, **figures))


finite = st.floats(min_value=0.01, max_value=1e4, allow_nan=False, allow_infinity=False)


@given(price=finite, n_gpus=st.integers(1, 8), hours=finite, tokens_per_s=finite)
def test_an_unpriced_gpu_cell_costs_hours_times_gpus_times_the_price(price, n_gpus, hours, tokens_per_s):
    saved = cell("mistral-7b-offline", gpus=H200 * n_gpus, projected_hours=hours, output_tokens_per_s=tokens_per_s)
    priced = price_cell(saved, ReportPrice(price, "USD"))
    assert priced["projected_cost"] == pytest.approx(hours * n_gpus * price, abs=0.01)
    assert priced["cost_per_1m_output_tokens"] == pytest.approx(
        price * n_gpus / (tokens_per_s * 3600) * 1e6, rel=1e-3, abs=1e-4
    )
    assert priced["cost_currency"] == "USD" and priced["cost_priced_at"] == "report"
    assert "projected_cost" not in saved or saved["projected_cost"] is None  # the saved cell is left as it was


@given(own=finite, report_price=finite)
def test_a_cells_own_price_wins(own, report_price):
    saved = cell(
        "mistral-7b-offline", gpus=H200, gpu_hourly_cost=own, cost_currency="EUR", projected_cost=round(own * 0.5, 2)
    )
    assert price_cell(saved, ReportPrice(report_price, "USD")) is saved


@pytest.mark.parametrize(
    "saved",
    [
        cell("gemma-270m-offline", gpus=[]),  # the CPU: no GPU to price
        cell(
            "qwen-14b-offline",
            gpus=H200,
            status="does not fit in 16 GiB: needs ~27.6 GiB",
            requests_per_s=None,
            projected_hours=None,
        ),
    ],
)
def test_cpu_cells_and_unrun_cells_are_not_priced(saved):
    assert price_cell(saved, ReportPrice(2.5, "USD")) is saved


def _storage(tmp_path):
    storage = tmp_path / ".benchmarks"
    save_run(
        storage,
        1,
        "h200",
        [
            saved_figures("mistral-7b-offline", gpus=H200, projected_hours=0.375),
            saved_figures(
                "qwen-14b-server",
                gpus=H200,
                projected_hours=0.75,
                gpu_hourly_cost=4.0,
                cost_currency="EUR",
                projected_cost=3.0,
            ),
        ],
        gpus=H200,
    )
    return storage


def test_report_command_prices_unpriced_runs_and_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    storage = _storage(tmp_path)
    before = {path: path.read_bytes() for path in storage.rglob("*.json")}
    assert (
        cli.main(
            [
                "report",
                "--storage",
                str(storage),
                "--out",
                "BENCHMARKS.md",
                "--gpu-hourly-cost=3.5",
                "--cost-currency=USD",
            ]
        )
        == 0
    )
    text = (tmp_path / "BENCHMARKS.md").read_text()
    assert f"1.31 USD{MARK}" in text  # 0.375 h x 1 GPU x 3.50
    assert "3.00 EUR" in text and f"3.00 EUR{MARK}" not in text  # its own price, unmarked
    assert f"{MARK} at $3.50/GPU-h, report-time price" in text
    assert {path: path.read_bytes() for path in storage.rglob("*.json")} == before  # saved runs untouched


def test_pyproject_price_is_used_and_the_command_line_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    storage = _storage(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.vllmbench]\ngpu_hourly_cost = 2.0\ncost_currency = "USD"\n')
    assert cli.main(["report", "--storage", str(storage), "--out", "BENCHMARKS.md"]) == 0
    assert f"0.75 USD{MARK}" in (tmp_path / "BENCHMARKS.md").read_text()
    assert cli.main(["report", "--storage", str(storage), "--out", "BENCHMARKS.md", "--gpu-hourly-cost=4"]) == 0
    text = (tmp_path / "BENCHMARKS.md").read_text()
    assert f"1.50 USD{MARK}" in text and "$4.00/GPU-h" in text


def test_without_a_price_nothing_is_priced_or_marked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    storage = _storage(tmp_path)
    assert cli.main(["report", "--storage", str(storage), "--out", "BENCHMARKS.md"]) == 0
    text = (tmp_path / "BENCHMARKS.md").read_text()
    assert MARK not in text and "report-time price" not in text
    assert price_runs(load_runs(storage), None) == load_runs(storage)


@pytest.mark.parametrize("value", ["abc", "nan", "inf", "-1"])
def test_a_bad_report_price_is_a_usage_error_and_writes_nothing(tmp_path, monkeypatch, capsys, value):
    monkeypatch.chdir(tmp_path)
    storage = _storage(tmp_path)
    assert cli.main(["report", "--storage", str(storage), "--out", "BENCHMARKS.md", f"--gpu-hourly-cost={value}"]) == 2
    assert "--gpu-hourly-cost expects" in capsys.readouterr().err
    assert not (tmp_path / "BENCHMARKS.md").exists()


def test_a_bad_pyproject_price_names_its_key(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    storage = _storage(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.vllmbench]\ngpu_hourly_cost = "cheap"\n')
    assert cli.main(["report", "--storage", str(storage), "--out", "BENCHMARKS.md"]) == 2
    assert "[tool.vllmbench] gpu_hourly_cost expects a finite number" in capsys.readouterr().err


def test_summary_of_an_unpriced_run_shows_the_report_time_cost(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    storage = _storage(tmp_path)
    assert (
        cli.main(["report", "--storage", str(storage), "--out", "BENCHMARKS.md", "--gpu-hourly-cost=3.5", "--summary"])
        == 0
    )
    out = capsys.readouterr().out
    assert "Projected cost" in out and "1.31" in out
    assert math.isclose(
        json.loads(next(storage.rglob("*.json")).read_text())["benchmarks"][0]["extra_info"].get("projected_cost") or 0,
        0,
    )  # the file still has no cost of its own


def test_a_sessions_report_prices_its_unpriced_gpu_cells_at_the_sessions_price(pytester, monkeypatch):
    from pathlib import Path

    from fake_cells import FAKE_BATCH

    pytester.makepyfile(test_batch=FAKE_BATCH)
    (pytester.path / "data").mkdir()
    (pytester.path / "data" / "batch_5k.jsonl").symlink_to(
        Path(__file__).resolve().parents[1] / "data" / "batch_5k.jsonl"
    )
    monkeypatch.setenv("FAKE_FIGURES", json.dumps({"gemma-270m-offline": {"gpus": H200, "output_tokens_per_s": 100.0}}))
    result = pytester.runpytest(
        "--model=gemma-270m",
        "--mode=offline",
        "--limit=2",
        "--benchmark-save=r1",
        "--gpu-hourly-cost=2",
        "--cost-currency=USD",
    )
    assert result.ret == 0
    text = (pytester.path / "BENCHMARKS.md").read_text()
    assert f"2.00 USD{MARK}" in text and f"{MARK} at $2.00/GPU-h, report-time price" in text  # 1.0 h x 1 GPU x 2
