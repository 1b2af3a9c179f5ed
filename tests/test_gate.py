import json
import math
import re
from pathlib import Path

import pytest
from fake_cells import FAKE_BATCH
from saved_runs import cell, save_run

from pytest_vllmbench.cli import main
from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.config.gate_rules import Rule
from pytest_vllmbench.results.gate import check, exit_code, missing_data, regressions, table

REPO_DATA = Path(__file__).resolve().parents[1] / "data" / "batch_5k.jsonl"


def test_rules_know_which_way_is_worse():
    assert Rule.parse("output_tokens_per_s:-5%") == Rule("output_tokens_per_s", 5.0)
    assert Rule.parse("ttft_ms_p99:+10%") == Rule("ttft_ms_p99", 10.0)
    assert Rule.parse("ttft_ms_p99:+300%") == Rule("ttft_ms_p99", 300.0)  # a rise has no ceiling
    assert Rule.parse("requests_per_s:-99.9%") == Rule("requests_per_s", 99.9)
    for bad, message in [
        ("ttft_ms_p99:-10%", "a rise"),
        ("requests_per_s:+5%", "a drop"),
        ("requests_per_s", "METRIC:CHANGE%"),
        ("requests_per_s:-100%", "could never fail"),  # 100 -> 0.001 req/s passed it
        ("requests_per_s:-1000%", "could never fail"),
    ]:
        with pytest.raises(UsageError, match=message):
            Rule.parse(bad)


@pytest.mark.parametrize("typo", ["mystery:+5%", "tfft_ms_p99:+10%", "ttft_ms_p95:+10%"])
def test_an_unknown_metric_is_a_usage_error_listing_the_known_ones(typo):
    with pytest.raises(UsageError, match="unknown metric") as info:
        Rule.parse(typo)
    assert "requests_per_s" in str(info.value) and "ttft_ms_p99" in str(info.value)


def test_check_flags_changes_beyond_the_tolerance_and_every_kind_of_missing_data():
    baseline = {
        "a": {"requests_per_s": 10.0, "ttft_ms_p99": 100.0},
        "b": {"requests_per_s": 10.0, "ttft_ms_p99": 100.0},
        "gone": {"requests_per_s": 1.0},
        "broke": {"requests_per_s": 1.0},
        "nan": {"requests_per_s": 1.0},
        "dead": {"requests_per_s": 1.0, "ttft_ms_p99": 100.0},
        "never": {"status": "does not fit: ..."},
    }
    current = {
        "a": {"requests_per_s": 9.6, "ttft_ms_p99": 111.0},
        "b": {"requests_per_s": 9.0},
        "broke": {"status": "failed: engine died"},
        "nan": {"requests_per_s": math.nan, "ttft_ms_p99": math.inf},
        "dead": {"n_requests": 4, "n_failed": 4, "requests_per_s": 1.0, "ttft_ms_p99": None},
        "new": {"requests_per_s": 1.0, "ttft_ms_p99": 5.0},
        "never": {"status": "does not fit: ..."},
    }
    checks = check(current, baseline, [Rule.parse("requests_per_s:-5%"), Rule.parse("ttft_ms_p99:+10%")])
    kinds = {(c.cell, c.metric): c.kind for c in checks}
    assert kinds == {
        ("a", "requests_per_s"): "ok",
        ("a", "ttft_ms_p99"): "regression",
        ("b", "requests_per_s"): "regression",
        ("b", "ttft_ms_p99"): "missing data",
        ("gone", "-"): "missing data",
        ("broke", "-"): "missing data",
        ("nan", "requests_per_s"): "missing data",
        ("nan", "ttft_ms_p99"): "missing data",
        ("dead", "n_failed"): "missing data",
        ("dead", "requests_per_s"): "ok",
        ("dead", "ttft_ms_p99"): "missing data",
        ("new", "requests_per_s"): "note",
        ("new", "ttft_ms_p99"): "note",
        ("never", "-"): "note",
    }
    assert len(regressions(checks)) == 2 and len(missing_data(checks)) == 7
    text = table(checks)
    assert "+11.0%" in text and "-10.0%" in text and "every request failed" in text
    assert "in the baseline, not in this run" in text and "failed: engine died" in text and "nan" in text
    assert exit_code(checks) == 1
    assert exit_code([c for c in checks if c.kind != "regression"]) == 3


def test_cli_gate_between_two_saved_runs(tmp_path, capsys):
    base = save_run(tmp_path, 1, "base", [cell(requests_per_s=2.0)])
    worse = save_run(tmp_path, 2, "worse", [cell(requests_per_s=1.0)])
    better = save_run(tmp_path, 3, "better", [cell(requests_per_s=3.0)])
    assert main(["gate", str(base), str(worse), "--rule", "requests_per_s:-5%"]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "-50.0%" in out and "1 regression(s)" in out
    assert main(["gate", str(base), str(better), "--rule", "requests_per_s:-5%"]) == 0
    assert "no regression" in capsys.readouterr().out
    other = save_run(tmp_path, 4, "gpu", [cell()], gpus=["NVIDIA H200"], machine_id="gpu")
    assert main(["gate", str(base), str(other), "--rule", "requests_per_s:-5%"]) == 2
    assert "different machines" in capsys.readouterr().err
    assert main(["gate", str(base), str(better), "--rule", "requests_per_s:+5%"]) == 2


def test_cli_gate_fails_on_missing_data_with_its_own_exit_code(tmp_path, capsys):
    base = save_run(tmp_path, 1, "base", [cell(requests_per_s=2.0), cell("gemma-270m-server", requests_per_s=2.0)])
    unrun_server = save_run(tmp_path, 2, "unrun", [cell(requests_per_s=2.0)])
    data = json.loads(unrun_server.read_text())
    data["vllmbench"] = {"unrun": [cell("gemma-270m-server") | {"status": "failed: server died"}]}
    unrun_server.write_text(json.dumps(data))
    assert main(["gate", str(base), str(unrun_server), "--rule", "requests_per_s:-5%"]) == 3
    out = capsys.readouterr().out
    assert "FAILED: failed: server died" in out and "1 cell(s) or figure(s) missing" in out
    all_failed = save_run(
        tmp_path,
        3,
        "failed",
        [cell(requests_per_s=2.0, n_failed=64, ttft_ms_p99=None), cell("gemma-270m-server", requests_per_s=2.0)],
    )
    assert main(["gate", str(base), str(all_failed), "--rule", "ttft_ms_p99:+10%"]) == 3
    assert "every request failed" in capsys.readouterr().out
    nan = save_run(tmp_path, 4, "nan", [cell(requests_per_s=math.nan), cell("gemma-270m-server", requests_per_s=2.0)])
    assert main(["gate", str(base), str(nan), "--rule", "requests_per_s:-5%"]) == 3
    assert main(["gate", str(base), str(nan), "--rule", "requests_per_s:-5%", "--rule", "reqs_per_s:-5%"]) == 2
    assert "known metrics:" in capsys.readouterr().err


def test_cli_gate_names_a_wrong_shaped_run_without_a_traceback(tmp_path, capsys):
    base = save_run(tmp_path, 1, "base", [cell()])
    bad = save_run(tmp_path, 2, "bad", [cell(requests_per_s="fast")])
    assert main(["gate", str(base), str(bad), "--rule", "requests_per_s:-5%"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "field 'requests_per_s' dropped: it is not a number" in err


@pytest.fixture
def fake(pytester):
    pytester.makepyfile(test_batch=FAKE_BATCH)
    (pytester.path / "data").mkdir()
    (pytester.path / "data" / "batch_5k.jsonl").symlink_to(REPO_DATA)
    return pytester


CELLS = ["--model=gemma-270m", "--mode=offline", "--mode=server", "--limit=2", "--report=none"]


def test_gate_without_a_baseline_is_a_notice(fake):
    result = fake.runpytest(*CELLS, "--vllmbench-gate=requests_per_s:-5%")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*vllmbench gate: no baseline run ('latest') for this machine*nothing was compared*"])


def test_a_named_baseline_that_does_not_exist_is_an_error(fake):
    fake.runpytest(*CELLS, "--benchmark-save=base")
    result = fake.runpytest(*CELLS, "--vllmbench-gate=requests_per_s:-5%", "--vllmbench-baseline=basse")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--vllmbench-baseline=basse: no saved run of that number or name*"])


def test_gate_fails_the_session_when_a_baseline_cell_did_not_run(fake, monkeypatch):
    assert fake.runpytest(*CELLS, "--benchmark-save=base").ret == 0
    result = fake.runpytest(*CELLS[:2], *CELLS[3:], "--vllmbench-gate=requests_per_s:-5%")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*gemma-270m-server*FAILED: in the baseline, not in this run*",
            "*vllmbench gate failed: 1 cell(s) or figure(s) missing*",
        ]
    )


def test_gate_fails_on_a_nan_figure(fake, monkeypatch):
    assert fake.runpytest(*CELLS, "--benchmark-save=base").ret == 0
    monkeypatch.setenv("FAKE_FIGURES", json.dumps({"gemma-270m-offline": {"requests_per_s": math.nan}}))
    result = fake.runpytest(*CELLS, "--vllmbench-gate=requests_per_s:-5%")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*gemma-270m-offline*requests_per_s*FAILED: no figure (nan)*"])


def test_gate_under_xdist_gates_the_merged_run(fake, monkeypatch):
    assert fake.runpytest(*CELLS, "--benchmark-save=base").ret == 0
    monkeypatch.setenv("FAKE_FIGURES", json.dumps({"gemma-270m-server": {"requests_per_s": 1.0}}))
    result = fake.runpytest(*CELLS, "-n", "2", "--benchmark-save=now", "--vllmbench-gate=requests_per_s:-5%")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*gemma-270m-offline*requests_per_s*ok*",
            "*gemma-270m-server*requests_per_s*-50.0%*REGRESSION*",
            "*vllmbench gate failed: 1 regression(s)*",
        ]
    )


def test_gate_refuses_when_nothing_would_be_measured(pytester):
    pytester.makepyfile(test_x="def test_x(benchmark):\n    benchmark(lambda: None)\n")
    plain = pytester.runpytest("--vllmbench-gate=requests_per_s:-5%", "--benchmark-disable")
    assert plain.ret == pytest.ExitCode.OK  # no vLLM cell collected: the plugin stays out of the way
    assert "vllmbench gate" not in plain.stdout.str() and not plain.stderr.str()
    pytester.makepyfile(test_batch="def test_batch(vllmbench_cell, benchmark):\n    vllmbench_cell.run(benchmark)\n")
    result = pytester.runpytest(
        "--vllmbench-gate=requests_per_s:-5%",
        "--benchmark-disable",
        "--mode=endpoint",
        "--endpoint=http://127.0.0.1:9/v1",
        "--model=some-model",
        f"--dataset={REPO_DATA}",
        "--limit=1",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--vllmbench-gate needs pytest-benchmark to measure*"])


def test_a_projects_score_hook_ranks_the_cells_in_the_report_too(fake, monkeypatch):
    """The hook used to score the saved cells only: BENCHMARKS.md's ranking still came from the default weights."""
    fake.makeconftest("""
def pytest_vllmbench_score(cells, weights):
    # this project prefers the server, whatever the throughput
    return [{"score": 1.0 if cell["mode"] == "server" else 0.0,
             "components": {"throughput": None, "total_time": None, "quality": None, "flexibility": None}}
            for cell in cells]
""")
    monkeypatch.setenv("FAKE_FIGURES", json.dumps({"gemma-270m-offline": {"requests_per_s": 9.0}}))
    result = fake.runpytest(*CELLS[:-1], "--benchmark-save=hooked", "--report=BENCHMARKS.md")
    assert result.ret == 0, result.stdout.str()
    ranking = (fake.path / "BENCHMARKS.md").read_text().split("## Ranking", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d) +\| (\S+) +\| (\S+) ", ranking, flags=re.M)
    assert rows == [("1", "gemma-270m-server", "1.000"), ("2", "gemma-270m-offline", "0.000")]


def _stats(mean, half=0.05):
    return {"n": 3, "mean": mean, "stddev": half, "ci95_low": mean - half, "ci95_high": mean + half, "ci95_half": half}


@pytest.mark.parametrize("rule", ["requests_per_s:-5%:noise", "requests_per_s:-5%"])
def test_a_nan_round_mean_is_missing_data_not_within_the_noise(tmp_path, capsys, rule):
    base = save_run(tmp_path, 1, "base", [cell(requests_per_s=2.0, round_stats={"requests_per_s": _stats(2.0)})])
    nan = {**_stats(1.0), "mean": math.nan}
    worse = save_run(tmp_path, 2, "nan", [cell(requests_per_s=2.0, round_stats={"requests_per_s": nan})])
    assert main(["gate", str(base), str(worse), "--rule", rule]) == 3  # the plain rule too reads the rounds' mean
    assert "round_stats mean or interval is not a finite number" in capsys.readouterr().out


def test_latest_baseline_is_the_newest_run_whose_cells_ran(tmp_path):
    from pytest_vllmbench.results.storage import describe_machine, find_baseline, load_runs

    save_run(tmp_path, 1, "good", [cell()], when="2026-11-29T10:00:00")
    save_run(tmp_path, 2, "failed", [cell(n_failed=64)], when="2026-11-30T10:00:00")
    runs = load_runs(tmp_path)
    machine = runs[0].machine
    assert machine == describe_machine({"cpu": {"brand_raw": "Test CPU", "count": 2}})
    found = find_baseline(runs, "latest", machine)
    assert found is not None and found.name == "0001_good"
    assert find_baseline(runs, "2", machine).name == "0002_failed"  # named on purpose: still used


def test_a_cell_run_beside_a_start_ahead_engine_in_one_run_only_is_noted_by_gate_and_compare(tmp_path, capsys):
    """--start-ahead costs the timed cell (~7 % of req/s on 2 CPU cores): set against a run without it, neither the
    gate nor compare may pass the difference off as the code's."""
    base = save_run(tmp_path, 1, "base", [cell(requests_per_s=2.0), cell("gemma-270m-server", requests_per_s=2.0)])
    ahead = save_run(
        tmp_path,
        2,
        "ahead",
        [cell(requests_per_s=1.9, load_overlapped=True), cell("gemma-270m-server", requests_per_s=2.0)],
    )
    assert main(["gate", str(base), str(ahead), "--rule", "requests_per_s:-10%"]) == 0  # a note never fails
    out = capsys.readouterr().out
    assert "ran beside a --start-ahead engine in one run only" in out
    [noted] = [line for line in out.splitlines() if "--start-ahead" in line]
    assert "gemma-270m-offline" in noted
    assert main(["compare", "0002_ahead", "0001_base", "--storage", str(tmp_path)]) == 0
    assert "Note: gemma-270m-offline ran beside a --start-ahead engine in one run only" in capsys.readouterr().out


def test_a_cell_measured_twice_in_one_run_is_gated_and_compared_twice_never_hidden(tmp_path, capsys):
    """Two tests of one cell save it twice in one run: the slower copy must not hide behind the faster one."""
    base = save_run(tmp_path, 1, "base", [cell(requests_per_s=10.0)])
    twice = save_run(tmp_path, 2, "twice", [cell(requests_per_s=1.0), cell(requests_per_s=10.0)])
    assert main(["gate", str(base), str(twice), "--rule", "requests_per_s:-5%"]) == 1
    out = capsys.readouterr().out
    assert "-90.0%" in out and "gemma-270m-offline #2" in out
    assert main(["compare", "0001_base", "0002_twice", "--storage", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Only in B: gemma-270m-offline #2" in out and "-90.0 %" in out


def test_a_cell_at_two_memory_budgets_is_gated_per_budget(tmp_path, capsys):
    base = save_run(tmp_path, 1, "base", [cell(requests_per_s=5.0, gpu_memory_budget_gib=16), cell(requests_per_s=9.0)])
    now = save_run(tmp_path, 2, "now", [cell(requests_per_s=9.0), cell(requests_per_s=4.0, gpu_memory_budget_gib=16)])
    assert main(["gate", str(base), str(now), "--rule", "requests_per_s:-5%"]) == 1
    assert "gemma-270m-offline (16 GiB budget)" in capsys.readouterr().out
    unbudgeted = save_run(tmp_path, 3, "plain", [cell(requests_per_s=9.0)])
    assert main(["gate", str(base), str(unbudgeted), "--rule", "requests_per_s:-5%"]) == 3
    assert "not in this run (this run has it at another memory budget)" in capsys.readouterr().out


def test_the_plain_rule_compares_the_rounds_means_not_the_last_rounds():
    def rounds(*rates):  # a run saves its last round's rate as its own
        return {
            "requests_per_s": rates[-1],
            "round_stats": {"requests_per_s": {"n": len(rates), "mean": sum(rates) / 3}},
        }

    baseline = {"a": rounds(100.0, 100.0, 100.0), "b": rounds(100.0, 100.0, 100.0)}
    current = {"a": rounds(80.0, 80.0, 100.0), "b": rounds(100.0, 100.0, 90.0)}
    verdicts = {c.cell: c.verdict for c in check(current, baseline, [Rule.parse("requests_per_s:-5%")])}
    assert verdicts == {"a": "REGRESSION", "b": "ok"}  # before: a passed on its last round, b failed on it
