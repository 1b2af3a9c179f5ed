from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.common.redaction import redact_text, redact_url
from pytest_vllmbench.config.settings import OPTIONS, merge_sources, parse_engine_arg, parse_slo, resolve

ROOT = Path("/project")


def settings_from(**cli):
    return resolve(merge_sources(cli, {}, {}), ROOT)


def test_defaults_are_the_dataset_models_offline_and_server():
    settings = settings_from()
    assert settings.models == ()  # taken from the batch file's lines
    assert settings.modes == ("offline", "server")
    assert settings.dataset == ROOT / "data/batch_5k.jsonl"
    assert (settings.rounds, settings.warmup, settings.project_to) == (
        1,
        None,
        170_000,
    )  # warm-up: decided per cell (GPU or not)


def test_command_line_beats_tool_table_beats_ini():
    cli = {"limit": "5"}
    tool = {"limit": 7, "rounds": 3}
    ini = {"limit": "9", "rounds": "4", "warmup": "2"}
    settings = resolve(merge_sources(cli, tool, ini), ROOT)
    assert (settings.limit, settings.rounds, settings.warmup) == (5, 3, 2)


def test_repeatable_options_accept_lists_and_single_values():
    settings = resolve(merge_sources({"model": ["a/b", "c/d", "a/b"]}, {"mode": "offline"}, {}), ROOT)
    assert settings.models == ("a/b", "c/d")
    assert settings.modes == ("offline",)


@pytest.mark.parametrize(
    ("cli", "message"),
    [
        ({"mode": ["batch"]}, "--mode must be one of"),
        ({"mode": ["endpoint"]}, "needs --endpoint"),
        ({"limit": "0"}, "--limit must be >= 1"),
        ({"limit": "ten"}, "--limit expects a number"),
        ({"limit": "3", "sample": "2"}, "either --limit or --sample"),
        ({"engine_arg": ["no-equals"]}, "KEY=VALUE"),
        ({"slo": "latency:3"}, "--slo expects"),
    ],
)
def test_bad_values_are_usage_errors(cli, message):
    with pytest.raises(UsageError, match=message):
        settings_from(**cli)


def test_engine_arg_values_are_json_when_they_can_be():
    assert parse_engine_arg("tensor-parallel-size=2") == ("tensor_parallel_size", 2)
    assert parse_engine_arg("enforce_eager=true") == ("enforce_eager", True)
    assert parse_engine_arg("quantization=bitsandbytes") == ("quantization", "bitsandbytes")
    assert parse_engine_arg('hf_overrides={"a": 1}') == ("hf_overrides", {"a": 1})


@given(
    st.from_regex(r"[a-z][a-z_]{0,20}", fullmatch=True),
    st.integers() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False),
)
def test_engine_arg_round_trips_json_scalars(key, value):
    import json

    assert parse_engine_arg(f"{key}={json.dumps(value)}") == (key, value)


def test_slo_parses_milliseconds():
    assert parse_slo("ttft:500,tpot:50") == {"ttft": 500.0, "tpot": 50.0}
    assert parse_slo(None) == {}


def test_every_option_has_a_settings_field():
    settings = settings_from()
    fields = set(settings.__dataclass_fields__) | {
        "model",
        "mode",
        "engine_arg",
        "slo",
        "vllmbench_gate",
        "vllmbench_baseline",
    }
    assert {option.key for option in OPTIONS} <= fields


@pytest.mark.parametrize(
    ("option", "value"),
    [
        (option, value)
        for option in ("request_rate", "request_timeout", "server_timeout")
        for value in ("nan", "inf", "-inf", "0", "-1", "1e999")
        if (option, value) != ("request_rate", "inf")  # no rate limit, as in vllm bench serve (test_loads.py)
    ],
)
def test_rates_and_timeouts_must_be_finite_and_above_zero(option, value):
    flag = "--" + option.replace("_", "-")
    with pytest.raises(UsageError, match=f"{flag} (expects a finite number|must be a number above 0)"):
        settings_from(**{option: value})


@pytest.mark.parametrize(
    ("option", "value"), [("concurrency", "0"), ("concurrency", "nan"), ("slo", "ttft:nan"), ("slo", "tpot:inf")]
)
def test_concurrency_and_slo_refuse_nonsense(option, value):
    with pytest.raises(UsageError):
        settings_from(**{option: value})


def test_an_api_key_with_a_line_break_is_refused_without_showing_any_of_it(monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-part1\npart2-SECRETHALF")  # a key file of two lines
    with pytest.raises(UsageError, match=r"\$MY_KEY holds a line break") as info:
        settings_from(mode=["endpoint"], endpoint="https://h/v1", api_key_env="MY_KEY")
    assert "part1" not in str(info.value) and "SECRETHALF" not in str(info.value)
    monkeypatch.setenv("MY_KEY", "sk-one-line")
    assert settings_from(mode=["endpoint"], endpoint="https://h/v1", api_key_env="MY_KEY").api_key == "sk-one-line"


def test_endpoint_without_endpoint_mode_is_a_usage_error_that_hides_credentials():
    with pytest.raises(UsageError, match="only used by endpoint mode: add --mode=endpoint") as info:
        settings_from(endpoint="http://bob:hunter22@h:1/v1")
    assert "hunter22" not in str(info.value) and "bob" not in str(info.value)


@pytest.mark.parametrize(
    "url", ["localhost:8000", "ftp://h/v1", "http://", "http://h:99999999/v1", "http://xn--zz.com/v1"]
)
def test_endpoint_url_must_be_http_with_a_host(url):
    with pytest.raises(UsageError, match="--endpoint expects an http"):
        settings_from(mode=["endpoint"], endpoint=url)


def test_bad_rate_is_exit_4_before_any_engine_starts(pytester):
    pytester.makepyfile(test_batch="def test_batch(vllmbench_cell, benchmark):\n    vllmbench_cell.run(benchmark)\n")
    result = pytester.runpytest("--request-rate=nan", "--mode=offline", "--model=gemma-270m")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--request-rate expects a finite number" in result.stderr.str()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


@pytest.mark.parametrize(
    ("option", "value", "flag"),
    [("engine_arg", ["pipeline_parallel_size=null"], "--engine-arg"), ("load_format", "dummy", "--load-format")],
)
def test_engine_options_are_refused_when_no_mode_of_the_session_starts_an_engine(option, value, flag):
    with pytest.raises(UsageError, match="shapes only an engine this session starts") as info:
        settings_from(mode=["endpoint"], endpoint="http://127.0.0.1:9/v1", **{option: value})
    assert str(info.value).startswith(f"{flag} (on the command line, or as {option} in [tool.vllmbench] or the ini")
    assert "offline, server, run-batch, ray" in str(info.value)  # the modes that own one, from the registry
    assert "--mode=endpoint alone" in str(info.value)


def test_engine_args_stay_allowed_beside_an_endpoint_when_another_mode_starts_an_engine():
    settings = settings_from(
        mode=["offline", "endpoint"], endpoint="http://127.0.0.1:9/v1", engine_arg=["max_num_seqs=8"]
    )
    assert settings.engine_args == {"max_num_seqs": 8}


def test_an_engine_arg_with_endpoint_mode_alone_is_exit_4_not_a_run_that_drops_it(pytester):
    pytester.makepyfile(test_batch="def test_batch(vllmbench_cell, benchmark):\n    vllmbench_cell.run(benchmark)\n")
    result = pytester.runpytest(
        "--mode=endpoint", "--endpoint=http://127.0.0.1:9/v1", "--model=x", "--engine-arg=pipeline_parallel_size=null"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--engine-arg (on the command line" in result.stderr.str()
    assert "shapes only an engine this session starts" in result.stderr.str()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


@pytest.mark.parametrize("url", ["http://[::1/v1", "http://h:99999999/v1", "http://[::1:8000/v1?api-version=2"])
def test_an_unparseable_endpoint_without_credentials_is_shown_as_typed(url):
    with pytest.raises(UsageError, match="--endpoint expects an http") as info:
        settings_from(mode=["endpoint"], endpoint=url)
    assert repr(url) in str(info.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://bob:hunter22@[::1/v1", "http://<redacted>@[::1/v1"),
        ("http://bob:hunter22@h:99999999/v1", "http://<redacted>@h:99999999/v1"),
        ("http://[::1/v1?code=k3y-value&api-version=2&bare", "http://[::1/v1?code=<redacted>&api-version=2&<redacted>"),
        ("http://[::1/v1#api_key=frag-key", "http://[::1/v1#<redacted>"),
        ("bob:hunter22@[::1/v1", "<redacted>@[::1/v1"),
    ],
)
def test_an_unparseable_url_hides_only_what_may_be_credentials(url, shown):
    assert redact_url(url) == shown
    with pytest.raises(UsageError) as info:
        settings_from(mode=["endpoint"], endpoint=url)
    for secret in ("bob", "hunter22", "k3y-value", "frag-key"):
        assert secret not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://bob:hunter#22@host/v1",
        "http://bob:hunter?22@host/v1",
        "http://bob:hunter/22@host/v1",
        "http://bob:123#hunter22@host/v1",
        "http://bob:p@ss#hunter22@[::1/v1",
    ],
)
def test_a_password_holding_a_url_delimiter_is_never_shown_in_part(url):
    """urlsplit ends the userinfo at the first `/`, `?` or `#`: what follows must not read as a path, query or
    fragment that is shown."""
    for shown in (redact_url(url), redact_text(f"calling {url} failed")):
        assert "bob" not in shown and "hunter" not in shown and "22" not in shown and "123" not in shown
    assert redact_url(url).removeprefix("http://") in ("<redacted>@host/v1", "<redacted>@[::1/v1")


@pytest.mark.parametrize(
    ("modes", "option", "value", "shapes"),
    [
        (["offline"], "concurrency", "16", "the load a client sends (server, endpoint)"),
        (["offline", "run-batch"], "request_rate", "8", "the load a client sends (server, endpoint)"),
        (["offline"], "api_server_count", "4", "a vLLM server this session starts (server)"),
    ],
)
def test_a_load_or_server_option_no_mode_of_the_session_uses_is_refused(modes, option, value, shapes):
    with pytest.raises(UsageError, match="alone it would be ignored") as info:
        settings_from(mode=modes, **{option: value})
    assert str(info.value).startswith(f"--{option.replace('_', '-')} (on the command line")
    assert f"shapes only {shapes}" in str(info.value)
    assert settings_from(mode=[*modes, "server"], **{option: value})  # beside a mode that uses it
