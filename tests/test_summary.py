"""The end-of-session summary table, as plain text from cell records."""

from saved_runs import cell

from pytest_vllmbench.results.gate import MISSING_DATA, REGRESSION, Check
from pytest_vllmbench.results.summary import cells_table, gate_lines, summary_block


def test_one_row_per_cell_with_the_figures_that_matter():
    text = cells_table(
        [
            cell(score=0.9, tpot_ms_p50=300.0, tpot_ms_p99=410.0, quality_valid_rate=0.5),
            cell("gemma-270m-server", requests_per_s=2.25),
        ]
    )
    header, _, first, second = text.splitlines()
    for column in (
        "Model",
        "Mode",
        "req/s",
        "out tok/s",
        "TTFT p50/p99 ms",
        "TPOT p50/p99 ms",
        "Load s",
        "Projected h",
        "Quality",
        "Score",
    ):
        assert column in header
    assert "Projected cost" not in header
    assert first.split()[:4] == ["gemma-270m", "offline", "1.50", "144.0"]
    assert "100 / 200" in first and "300 / 410" in first and "valid 50%" in first and "0.900" in first
    assert second.split()[:3] == ["gemma-270m", "server", "2.25"]


def test_cost_column_only_when_a_cell_knows_its_cost():
    assert "Projected cost" not in cells_table([cell(projected_cost=None, cost_currency=None)])
    text = cells_table([cell(projected_cost=12.5, cost_currency="USD"), cell("gemma-270m-server", projected_cost=None)])
    header, _, first, second = text.splitlines()
    assert "Projected cost" in header and "12.50 USD" in first and " - " in second


def test_no_cell_ran_means_no_summary_and_unrun_cells_are_listed():
    unrun = {
        "cell": "qwen-14b-offline",
        "model": "qwen-14b",
        "mode": "offline",
        "status": "does not fit: needs ~27 GiB",
    }
    assert summary_block([]) == "" and summary_block([unrun]) == ""
    block = summary_block([cell(), unrun], ["gates: passed"], "s/0001_a.json", "BENCHMARKS.md")
    assert "not run: qwen-14b-offline: does not fit: needs ~27 GiB" in block
    assert block.splitlines()[-3:] == [
        "gates: passed",
        "run saved in s/0001_a.json",
        "report regenerated: BENCHMARKS.md",
    ]
    assert "qwen-14b  " not in block.split("\n\n")[0]  # not a row of the table


def test_gate_lines_say_pass_fail_or_no_baseline():
    ok = Check("c", "requests_per_s", 2.0, 1.99, -0.5, 5.0, "ok")
    bad = Check("c", "ttft_ms_p99", 100.0, 130.0, 30.0, 10.0, "REGRESSION", kind=REGRESSION)
    gone = Check("d", "requests_per_s", 2.0, None, None, 5.0, "missing in this run", kind=MISSING_DATA)
    assert gate_lines(None, None) == []
    assert gate_lines(None, []) == ["gates: no baseline run for this machine; nothing was compared"]
    assert gate_lines("m/0001_a.json", [ok]) == ["gates: passed, 1 check(s) against m/0001_a.json"]
    [line] = gate_lines("m/0001_a.json", [ok, bad])
    assert line.startswith("gates: FAILED, 1 regression(s) of 2 check(s)") and "c ttft_ms_p99 +30.0%" in line
    [line] = gate_lines("m/0001_a.json", [ok, gone])  # a missing cell fails the gate: the summary must say so
    assert line.startswith("gates: FAILED, 1 cell(s) or figure(s) missing of 2 check(s)") and "d requests_per_s" in line


def test_non_finite_latencies_show_as_missing_in_summary_and_report():
    """A hand-edited or corrupt run may hold NaN/inf: both views show `-`, never `nan`."""
    from pytest_vllmbench.results.summary import latency_pair

    assert latency_pair({"ttft_ms_p50": float("nan"), "ttft_ms_p99": 5.0}, "ttft") == "-"
    assert latency_pair({"ttft_ms_p50": 1234.4, "ttft_ms_p99": float("inf")}, "ttft") == "1,234 / -"
    assert latency_pair({"ttft_ms_p50": 1234.4, "ttft_ms_p99": 2000.6}, "ttft") == "1,234 / 2,001"
    assert "nan" not in cells_table([cell(requests_per_s=float("nan"), ttft_ms_p50=float("nan"))]).lower()


def test_a_rounds_cell_shows_its_rounds_means_not_its_last_rounds_figures():
    rates, tokens = [4.0, 4.0, 1.0], [400.0, 400.0, 100.0]  # a run saves its last round's figures as its own
    rounds = [{"requests_per_s": r, "output_tokens_per_s": t} for r, t in zip(rates, tokens, strict=True)]
    stats = {"requests_per_s": {"n": 3, "mean": 3.0, "ci95_half": 0.5}, "output_tokens_per_s": {"n": 3, "mean": 300.0}}
    saved = cell(requests_per_s=1.0, output_tokens_per_s=100.0, projected_hours=47.3, rounds=rounds, round_stats=stats)
    row = cells_table([saved]).splitlines()[2]
    assert "3.00 ± 0.50" in row and "300.0" in row and "100.0" not in row
    assert "47.3" not in row  # the mean of the rounds' projected hours, not the last round's
