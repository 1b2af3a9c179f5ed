import pytest

from pytest_vllmbench.cli import main
from pytest_vllmbench.errors import UsageError
from pytest_vllmbench.gate import Rule, check, regressions, table

from saved_runs import cell, save_run


def test_rules_know_which_way_is_worse():
    assert Rule.parse("output_tokens_per_s:-5%") == Rule("output_tokens_per_s", 5.0)
    assert Rule.parse("ttft_ms_p99:+10%") == Rule("ttft_ms_p99", 10.0)
    for bad, message in [("ttft_ms_p99:-10%", "a rise"), ("requests_per_s:+5%", "a drop"),
                         ("mystery:+5%", "direction is unknown"), ("requests_per_s", "METRIC:CHANGE%")]:
        with pytest.raises(UsageError, match=message):
            Rule.parse(bad)


def test_check_flags_only_changes_beyond_the_tolerance():
    baseline = {"a": {"requests_per_s": 10.0, "ttft_ms_p99": 100.0}, "b": {"requests_per_s": 10.0}}
    current = {"a": {"requests_per_s": 9.6, "ttft_ms_p99": 111.0}, "b": {"requests_per_s": 9.0}, "new": {}}
    checks = check(current, baseline, [Rule.parse("requests_per_s:-5%"), Rule.parse("ttft_ms_p99:+10%")])
    verdicts = {(c.cell, c.metric): c.verdict for c in checks}
    assert verdicts == {
        ("a", "requests_per_s"): "ok", ("a", "ttft_ms_p99"): "REGRESSION",
        ("b", "requests_per_s"): "REGRESSION", ("b", "ttft_ms_p99"): "missing",
        ("new", "requests_per_s"): "missing", ("new", "ttft_ms_p99"): "missing",
    }
    assert len(regressions(checks)) == 2
    assert "+11.0%" in table(checks) and "-10.0%" in table(checks)


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


def test_gate_without_a_baseline_is_a_notice(pytester):
    pytester.makepyfile(test_x="def test_x(benchmark):\n    benchmark(lambda: None)\n")
    result = pytester.runpytest("--vllmbench-gate=requests_per_s:-5%", "--report=none")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*vllmbench gate: no baseline run ('latest') for this machine*nothing was compared*"])


def test_gate_refuses_when_nothing_would_be_measured(pytester):
    pytester.makepyfile(test_x="def test_x(benchmark):\n    benchmark(lambda: None)\n")
    result = pytester.runpytest("--vllmbench-gate=requests_per_s:-5%", "--benchmark-disable")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--vllmbench-gate needs pytest-benchmark to measure*"])
