"""What `validate` accepts is what every engine can send and vLLM accepts; it never raises."""

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_vllmbench import cli
from pytest_vllmbench.workload.batch import BatchRequest, iter_batch
from pytest_vllmbench.workload.batch_line import CHAT_FIELDS, COMPLETION_FIELDS


def line(url="/v1/chat/completions", custom_id="r1", **body_fields):
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    if url == "/v1/completions":
        body = {"model": "m", "prompt": "hi"}
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": body | body_fields})


def nested(depth):
    return "[" * depth + "]" * depth


REFUSED = {  # raw line -> what the message must say
    line(temperature=1.0).replace("1.0", "NaN"): "NaN is not a finite number",
    line(top_p=1.0).replace("1.0", "Infinity"): "Infinity is not a finite number",
    line(temperature=1.0).replace("1.0", "-Infinity"): "-Infinity is not a finite number",
    line(temperature=1.0).replace("1.0", "1e999"): "1e999 is not a finite number",
    line(messages=[{"role": "user", "content": "x"}]).replace('"x"', '"x\\ud800"'): "lone UTF-16 surrogate",
    line(messages=[{"role": "user", "content": "x"}]).replace('"x"', '"\\uDFFF"'): "lone UTF-16 surrogate",
    line(response_format={"type": "json_schema", "json_schema": "not-an-object"}): "json_schema must be a JSON object",
    line(response_format={"type": "json_schema", "json_schema": ["x"]}): "json_schema must be a JSON object",
    line(response_format={"type": ["json_object"]}): "response_format.type must be one of",
    line(messages=[{"role": ["user"], "content": "x"}]): "role ['user'] is not one of",
    line(messages=[{"role": "user", "content": [{"type": ["text"]}]}]): "must be an object whose type",
    line(metadata=json.loads(nested(80))): "nested deeper than 64 levels",
    '{"custom_id": "x", "body": ' + nested(5000) + "}": "nested deeper than",
    line(top_p=0): "body.top_p must be a number in (0.0, 1.0]",
    line(top_k=-2): "body.top_k must be",
    line(top_k=1.5): "body.top_k must be",
    line(presence_penalty=3): "body.presence_penalty must be a number in [-2.0, 2.0]",
    line(frequency_penalty="0.5"): "body.frequency_penalty must be a number",
    line(repetition_penalty=0): "body.repetition_penalty must be a number in (0.0,",
    line(n=True): "body.n must be an integer",
    line(n=2, temperature=0): "n > 1 needs a temperature above 0",
    line(seed=2**64): "body.seed must be an integer in [-9223372036854775808, 9223372036854775807]",
    line(stop=""): "body.stop must be",
    line(stop=["a", 3]): "body.stop must be",
    line(stop_token_ids=[1, -1]): "body.stop_token_ids must be",
    line(logit_bias={"12": 500}): "body.logit_bias must map",
    line(logit_bias={"²": 1}): "body.logit_bias must map",
    line(logprobs=3): "body.logprobs must be true or false in a chat request",
    line(logprobs=True, top_logprobs=99): "body.top_logprobs must be an integer in [0, 20]",
    line(top_logprobs=2): "top_logprobs needs body.logprobs",
    line("/v1/completions", logprobs=True): "body.logprobs must be an integer in [0, 20] in a completion request",
    line(ignore_eos="yes"): "body.ignore_eos must be true or false",
    line(min_tokens=50, max_tokens=10): "min_tokens must not exceed max_tokens",
    line(tools=[{"type": "function"}]): "body.tools is not supported",
    line("/v1/completions", echo=True): "body.echo is not supported",
    line("/v1/completions", prompt=[2**40]): "body.prompt must be",
    line(max_tokens=2**40): "body.max_tokens must be an integer in [1,",
    '{"custom_id": "x", "n": ' + "9" * 5000 + "}": "invalid JSON",
}


@pytest.mark.parametrize("raw", list(REFUSED), ids=list(REFUSED.values()))
def test_values_no_engine_could_send_or_vllm_would_take_are_refused_at_their_line(tmp_path, raw):
    path = tmp_path / "b.jsonl"
    path.write_text(line(custom_id="good") + "\n" + raw + "\n")
    items = list(iter_batch(path))
    assert isinstance(items[0], BatchRequest)
    assert isinstance(items[1], str) and items[1].startswith(f"{path}:2: ")
    assert REFUSED[raw] in items[1]


def test_what_offline_can_honour_is_accepted(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_text(
        "\n".join(
            [
                line(
                    custom_id="a",
                    n=2,
                    temperature=0.7,
                    presence_penalty=0.5,
                    frequency_penalty=-0.5,
                    repetition_penalty=1.1,
                    top_k=20,
                    min_p=0.05,
                    seed=-3,
                    stop=["\n\n"],
                    stop_token_ids=[1],
                    logit_bias={"7": -100},
                    logprobs=True,
                    top_logprobs=5,
                    min_tokens=1,
                    max_tokens=8,
                    user="u",
                    metadata={"k": "v"},
                ),
                line("/v1/completions", custom_id="b", logprobs=2, stop="x", ignore_eos=True),
                line(custom_id="c", messages=[{"role": "user", "content": "caf\u00e9 \U0001f600 \\ud83d\\ude00"}]),
            ]
        )
        + "\n"
    )
    items = list(iter_batch(path))
    assert all(isinstance(item, BatchRequest) for item in items), items


def test_one_broken_file_does_not_stop_the_check_of_the_next(tmp_path, capsys):
    bad, good = tmp_path / "bad.jsonl", tmp_path / "good.jsonl"
    bad.write_text(line(response_format={"type": "json_schema", "json_schema": "x"}) + "\n" + nested(3000) + "\n")
    good.write_text(line() + "\n")
    assert cli.main(["validate", str(bad), str(good)]) == 1
    out, err = capsys.readouterr()
    assert f"{bad}:1: " in err and f"{bad}:2: " in err and f"{good}: 1 valid request(s), 0 invalid" in out


def test_validate_takes_max_errors_from_zero_and_counts_what_it_left_out(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(line() + "\n" + " \n" + "x\n" + "y\n")
    with pytest.raises(SystemExit) as exit_info:  # argparse: exit 2 and a usage line, as for any bad option
        cli.main(["validate", "--max-errors", "-1", str(bad)])
    assert exit_info.value.code == 2 and "--max-errors: expected an integer >= 0, got '-1'" in capsys.readouterr().err
    assert cli.main(["validate", "--max-errors", "1", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: ... 2 more invalid line(s)" in err and "3 invalid" in err


# --- properties: any line, generated or mutated, gives a request or a FILE:LINE message, never an exception ---

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
FIELDS = sorted(CHAT_FIELDS | COMPLETION_FIELDS | {"custom_id", "method", "url", "body", "tools", "echo"})


RAW_TOKENS = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    '"\\ud800"',
    '"\\udfff x"',
    nested(3000),
    "9" * 5000,
    '{"type": "json_schema", "json_schema": 7}',
]
SENTINEL = "@@RAW@@"


def mutated_line(base, data):
    """One field set to a random JSON value or to a raw token Python's json accepts but no server should get;
    sometimes one raw edit anywhere in the line as well."""
    obj = json.loads(base)
    target = obj if data.draw(st.integers(0, 3)) == 0 else obj["body"]
    raw = data.draw(st.none() | st.sampled_from(RAW_TOKENS))
    value = data.draw(json_values) if raw is None else [SENTINEL] if data.draw(st.booleans()) else SENTINEL
    target[data.draw(st.sampled_from(FIELDS))] = value
    text = json.dumps(obj)
    if raw is not None:
        text = text.replace(json.dumps(SENTINEL), raw)
    if data.draw(st.integers(0, 3)) == 0:
        insert = data.draw(st.sampled_from(RAW_TOKENS + ["}", ",", "\\", '"', "\x00", "\xff"]))
        at = data.draw(st.integers(0, len(text)))
        text = text[:at] + insert + text[at:]
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_mutated_line_is_a_request_or_a_file_line_message(tmp_path, data):
    base = data.draw(st.sampled_from([line(), line("/v1/completions")]))
    path = tmp_path / "m.jsonl"
    path.write_bytes(mutated_line(base, data).encode("utf-8", "surrogatepass") + b"\n")
    for item in iter_batch(path):
        assert isinstance(item, BatchRequest) or re.match(rf"{re.escape(str(path))}:1: \S", item), item
        if isinstance(item, BatchRequest):  # accepted means sendable: strict JSON, UTF-8
            json.dumps(item.body, allow_nan=False).encode("utf-8")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_the_validate_command_answers_0_or_1_with_file_line_messages(tmp_path, capsys, data):
    lines = [mutated_line(line(custom_id=f"id{i}"), data) for i in range(data.draw(st.integers(1, 3)))]
    path = tmp_path / "v.jsonl"
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass") + b"\n")
    capsys.readouterr()
    status = cli.main(["validate", str(path)])
    _out, err = capsys.readouterr()
    assert status in (0, 1)
    messages = [text for text in err.splitlines() if not text.startswith(f"{path}: ")]
    assert all(re.match(rf"{re.escape(str(path))}:\d+: \S", text) for text in messages), messages
    assert (status == 0) == (not messages)


@pytest.mark.parametrize(
    "bad",
    [
        line(response_format={"type": "json_schema", "json_schema": "x"}),
        nested(5000),
        line(temperature=1.0).replace("1.0", "NaN"),
    ],
)
def test_the_benchmark_stops_with_exit_4_and_file_line_never_a_traceback(pytester, bad):
    pytester.makepyfile(test_batch="def test_batch(vllmbench_cell, benchmark):\n    vllmbench_cell.run(benchmark)\n")
    path = pytester.path / "bad.jsonl"
    path.write_text(line(custom_id="ok") + "\n" + bad + "\n")
    result = pytester.runpytest(f"--dataset={path}", "--mode=offline", "--model=gemma-270m")
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output
    assert f"{path}:2: " in output and "Traceback" not in output


def test_a_key_with_a_control_character_is_quoted_in_the_message_that_names_it(tmp_path, capsys):
    """Found by the property above on a CI run: a JSON key holding U+001E (a line boundary to str.splitlines) went
    into the message as it was, so the message for one line broke in two."""
    path = tmp_path / "k.jsonl"
    envelope = '"custom_id": "a", "method": "POST", "url": "/v1/chat/completions"'
    path.write_text(
        f'{{{envelope}, "body": [{{"\\u001e": "\\ud800"}}]}}\n'
        f'{{{envelope}, "body": {{"model": "m", "messages": [], "\\u001e": 1}}}}\n'
    )
    assert cli.main(["validate", str(path)]) == 1
    first, second = capsys.readouterr().err.splitlines()[:2]
    assert first == (
        f"{path}:1: body[0]['\\x1e'] holds a lone UTF-16 surrogate (\\ud800-\\udfff): it cannot be sent as UTF-8"
    )
    assert second.startswith(f"{path}:2: body['\\x1e'] is not supported: every mode must do the same work")
