"""[tool.vllmbench] is checked strictly, by one schema, for the session and the CLI (issue 24)."""

from pathlib import Path

import pytest

from pytest_vllmbench.cli import main
from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.config.schema import kind_of
from pytest_vllmbench.config.settings import (
    OPTIONS,
    merge_sources,
    parse_engine_arg,
    parse_slo,
    read_tool_table,
    resolve,
)

BAD_TABLES = [
    ("rounds = inf", "rounds expects a whole number"),
    ("seed = inf", "seed expects a whole number"),
    ("limit = inf", "limit expects a whole number"),
    ("rounds = 1.7", "rounds expects a whole number"),
    ("rounds = true", "rounds expects a whole number"),
    ("model = 5", "model expects a non-empty string"),
    ("model = [5]", "model expects a non-empty string"),
    ('model = [""]', "model expects a non-empty string"),
    ('ignore_eos = "false"', "ignore_eos expects true or false"),
    ("api_key_env = 5", "api_key_env expects a string"),
    ("roundz = 3", "roundz: unknown key"),
    ("weights = 5", "weights must be a table"),
    ("[tool.vllmbench.engine_arg]\nx = 1", "engine_arg expects a non-empty string"),
    ("[tool.vllmbench.extra]\nx = 1", "extra: unknown key"),
    ("[tool.vllmbench.flexibility]\nendpoint = 7", "flexibility.endpoint expects a number in"),
    ("[tool.vllmbench.weights]\nspeed = 1", "unknown score weight"),
    ('"\\u001e" = 1', "\\[tool.vllmbench\\] '\\\\x1e': unknown key"),  # quoted: a control character reaches no terminal
]


def write_pyproject(folder, body):
    text = body if body.startswith("[tool]") else f"[tool.vllmbench]\n{body}\n"
    (folder / "pyproject.toml").write_text(text)
    return folder / "pyproject.toml"


@pytest.mark.parametrize(("body", "message"), BAD_TABLES)
def test_a_bad_tool_table_is_a_usage_error_naming_the_key_and_the_file(tmp_path, body, message):
    path = write_pyproject(tmp_path, body)
    with pytest.raises(UsageError, match=message) as caught:
        read_tool_table(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("body", ["[tool]\nvllmbench = 5\n", "tool = 5\n"])
def test_a_tool_or_vllmbench_key_that_is_not_a_table_is_a_usage_error(tmp_path, body):
    (tmp_path / "pyproject.toml").write_text(body)
    with pytest.raises(UsageError, match="must be a table"):
        read_tool_table(tmp_path / "pyproject.toml")


def test_a_good_tool_table_keeps_its_values(tmp_path):
    path = write_pyproject(tmp_path, 'rounds = 3\nmodel = ["a/b"]\nignore_eos = true\nrequest_rate = [2, "inf"]')
    table = read_tool_table(path)
    settings = resolve(merge_sources({}, table, {}), tmp_path)
    assert (settings.rounds, settings.models, settings.ignore_eos) == (3, ("a/b",), True)


def test_api_server_counts_come_from_the_tool_table_as_a_number_or_a_list(tmp_path):
    for body, expected in (("api_server_count = 4", (4,)), ("api_server_count = [1, 4]", (1, 4))):
        table = read_tool_table(write_pyproject(tmp_path, body))
        assert resolve(merge_sources({}, table, {}), tmp_path).api_server_count == expected


def test_warmup_defaults_to_per_cell_and_takes_a_whole_number_from_the_tool_table(tmp_path):
    assert resolve(merge_sources({}, {}, {}), tmp_path).warmup is None  # one round on a GPU, none on the CPU
    table = read_tool_table(write_pyproject(tmp_path, "warmup = 2"))
    assert resolve(merge_sources({}, table, {}), tmp_path).warmup == 2


@pytest.mark.parametrize("value", ["1.7", 1.7, True])
def test_a_whole_number_option_is_never_rounded(value):
    with pytest.raises(UsageError, match="--rounds"):
        resolve(merge_sources({}, {"rounds": value}, {}), Path("/p"))


@pytest.mark.parametrize(("text", "message"), [("ttft:0", "above 0"), ("ttft:5,ttft:7", "twice")])
def test_slo_refuses_zero_and_a_repeated_name(text, message):
    with pytest.raises(UsageError, match=message):
        parse_slo(text)


def test_a_mistyped_engine_arg_never_echoes_its_value():
    with pytest.raises(UsageError) as caught:
        parse_engine_arg("hf_token:hf_SECRETVALUE")
    assert "SECRETVALUE" not in str(caught.value)


@pytest.mark.parametrize("body", ["weights = 5", "[tool.vllmbench.flexibility]\nendpoint = 7"])
def test_report_refuses_a_bad_tool_table_without_a_traceback(tmp_path, monkeypatch, capsys, body):
    write_pyproject(tmp_path, body)
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--storage", str(tmp_path / "runs"), "--out", str(tmp_path / "B.md")]) == 2
    assert "pyproject.toml" in capsys.readouterr().err


@pytest.mark.parametrize("body", ["limit = inf", "model = [5]", "surprise = 1"])
def test_a_bad_tool_table_is_exit_4_before_anything_runs(pytester, body):
    pytester.makepyfile(test_batch="def test_batch(vllmbench_cell, benchmark):\n    vllmbench_cell.run(benchmark)\n")
    pytester.makefile(".toml", pyproject=f"[tool.vllmbench]\n{body}\n")
    result = pytester.runpytest("--mode=offline")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "pyproject.toml" in result.stderr.str()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_a_baseline_may_be_a_run_number_or_a_name(tmp_path):
    assert read_tool_table(write_pyproject(tmp_path, "vllmbench_baseline = 3"))["vllmbench_baseline"] == 3
    assert read_tool_table(write_pyproject(tmp_path, 'vllmbench_baseline = "latest"'))
    with pytest.raises(UsageError, match="vllmbench_baseline"):
        read_tool_table(write_pyproject(tmp_path, "vllmbench_baseline = 1.5"))


# A wrong value of each kind the schema knows, as TOML text.
WRONG_VALUE = {
    "bool": '"yes"',
    "int": '"x"',
    "float": '"x"',
    "price": "-3",
    "str": "3",
    "strings": "3",
    "ints": "true",
    "rates": "true",
    "size": "true",
    "run": "1.5",
}
PREAMBLE = '[project]\nname = "x"\n\n[tool.vllmbench]\nrounds = 2\n'  # the key under test is set on line 6


def _refusal(path, text):
    """The UsageError reading a pyproject.toml of `text` raises."""
    path.write_text(text)
    with pytest.raises(UsageError) as caught:
        read_tool_table(path)
    return str(caught.value)


@pytest.mark.parametrize("option", OPTIONS, ids=lambda option: option.key)
def test_every_key_of_the_tool_table_names_the_file_and_line_of_a_bad_value(tmp_path, option):
    body = PREAMBLE.replace("rounds = 2", "seed = 2") if option.key == "rounds" else PREAMBLE
    path = tmp_path / "pyproject.toml"
    refusal = _refusal(path, f"{body}{option.key} = {WRONG_VALUE[kind_of(option)]}\n")
    assert refusal.startswith(f"{path}:6: [tool.vllmbench] {option.key} expects ")


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("weights = 5", 6, "[tool.vllmbench] weights must be a table"),
        ("flexibility = 5", 6, "[tool.vllmbench] flexibility must be a table"),
        ("gpu_bandwidth_gbps = 5", 6, "[tool.vllmbench] gpu_bandwidth_gbps must be a table"),
        ("roundz = 3", 6, "[tool.vllmbench] roundz: unknown key"),
        ("gpu-hourly-cost = -3", 6, "[tool.vllmbench] gpu-hourly-cost expects a finite number >= 0, got -3"),
        (
            "\n[tool.vllmbench.flexibility]\noffline = 0.5\nendpoint = 7",
            9,
            "[tool.vllmbench] flexibility.endpoint expects",
        ),
        ("\n[tool.vllmbench.gpu_bandwidth_gbps]\nH100 = 0", 8, "[tool.vllmbench] gpu_bandwidth_gbps.H100 expects"),
        ("\n[tool.vllmbench.weights]\nspeed = 1", 8, "[tool.vllmbench] weights: unknown score weight"),
        ('dataset_transform = """\nseed = 3\n"""\nseed = "x"', 9, "[tool.vllmbench] seed expects a whole number"),
    ],
    ids=[
        "weights",
        "flexibility",
        "bandwidth",
        "unknown",
        "price",
        "flex-entry",
        "bandwidth-entry",
        "weight",
        "string",
    ],
)
def test_tables_unknown_keys_and_entries_name_their_line(tmp_path, body, line, message):
    path = tmp_path / "pyproject.toml"
    assert _refusal(path, f"{PREAMBLE}{body}\n").startswith(f"{path}:{line}: {message}")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("[tool]\nname = 1\nvllmbench = 5\n", 3),
        ("tool = 5\n", 1),
        ('[tool]\nvllmbench.rounds = "x"\n', 2),
        ('[tool]\nvllmbench = { seed = 1, rounds = "x" }\n', 2),
    ],
)
def test_dotted_and_inline_tables_name_their_line_too(tmp_path, text, line):
    path = tmp_path / "pyproject.toml"
    path.write_text(text)
    with pytest.raises(UsageError) as caught:
        read_tool_table(path)
    assert str(caught.value).startswith(f"{path}:{line}: ")


def test_report_names_the_file_and_line_of_a_negative_price(tmp_path, monkeypatch, capsys):
    (tmp_path / "pyproject.toml").write_text(f"{PREAMBLE}gpu_hourly_cost = -3\n")
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--storage", str(tmp_path / "runs"), "--out", str(tmp_path / "B.md")]) == 2
    assert "pyproject.toml:6: [tool.vllmbench] gpu_hourly_cost expects a finite number >= 0, got -3" in (
        capsys.readouterr().err
    )
