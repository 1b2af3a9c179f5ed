import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_vllmbench.workload.batch import BatchFileError, read_batch, select


def line(custom_id="r1", url="/v1/chat/completions", **body_fields):
    body = {"model": "gemma3:12b", "messages": [{"role": "user", "content": "hi"}]} | body_fields
    if url == "/v1/completions":
        body = {"model": "gemma3:12b", "prompt": "hi"} | body_fields
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": body})


def write(tmp_path, *lines, raw=None, name="batch.jsonl"):
    path = tmp_path / name
    path.write_bytes(raw if raw is not None else ("\n".join(lines) + "\n").encode())
    return path


def errors_of(path):
    with pytest.raises(BatchFileError) as info:
        read_batch(path)
    return info.value.errors


GOOD = line("ok-1")
BAD_LINES = {
    "invalid JSON": '{"custom_id": "x", ',
    "expected a JSON object": "[1, 2]",
    "missing custom_id": json.dumps({"method": "POST", "url": "/v1/chat/completions", "body": {}}),
    "method must be 'POST'": line().replace('"POST"', '"GET"'),
    "url must be one of": line(url="/v1/embeddings"),
    "missing body": json.dumps({"custom_id": "x", "method": "POST", "url": "/v1/chat/completions"}),
    "body.messages must be a non-empty list": line(messages=[]),
    "role 'wizard' is not one of": line(messages=[{"role": "wizard", "content": "x"}]),
    "content must be a string": line(messages=[{"role": "user", "content": 5}]),
    "content[0] must be an object whose type": line(messages=[{"role": "user", "content": [{"type": "video"}]}]),
    "body.max_tokens must be an integer in [1,": line(max_tokens=0),
    "body.max_completion_tokens must be an integer in [1,": line(max_completion_tokens=-3),
    "body.temperature must be a number": line(temperature="hot"),
    "body.model must be a non-empty string": line(model=""),
    "body.prompt must be": line(url="/v1/completions", prompt=["a", "b"]),
    "body.response_format.type": line(response_format={"type": "yaml"}),
}


@pytest.mark.parametrize("message", list(BAD_LINES))
def test_each_bad_line_is_reported_with_file_and_line(tmp_path, message):
    path = write(tmp_path, GOOD, BAD_LINES[message])
    assert errors_of(path) == [errors_of(path)[0]]
    assert errors_of(path)[0].startswith(f"{path}:2: ")
    assert message in errors_of(path)[0]


def test_all_errors_are_listed_not_just_the_first(tmp_path):
    path = write(tmp_path, line("a"), "nope", line("b"), "[]", line("a"))
    errors = errors_of(path)
    assert [e.split(":")[1] for e in errors] == ["2", "4", "5"]
    assert "duplicate custom_id 'a' (first on line 1)" in errors[2]


def test_error_list_is_capped_but_the_total_is_counted(tmp_path):
    path = write(tmp_path, *["bad"] * 120)
    with pytest.raises(BatchFileError) as info:
        read_batch(path)
    assert len(info.value.errors) == 50 and info.value.total == 120
    assert "and 70 more" in str(info.value)


def test_non_utf8_empty_file_and_blank_line(tmp_path):
    assert "not UTF-8" in errors_of(write(tmp_path, raw=GOOD.encode() + b"\n" + b'{"custom_id": "\xff"}\n'))[0]
    assert "empty file" in errors_of(write(tmp_path, raw=b"", name="empty.jsonl"))[0]
    assert errors_of(write(tmp_path, line("a"), "", line("b"), name="blank.jsonl")) == [
        f"{tmp_path / 'blank.jsonl'}:2: empty line"
    ]


def test_bom_crlf_unicode_and_long_prompts_pass(tmp_path):
    long_text = "Zürich 東京 🚀 " * 5000
    content = [
        line("a", messages=[{"role": "system", "content": "rubric"}, {"role": "user", "content": long_text}]),
        line("b", messages=[{"role": "user", "content": [{"type": "text", "text": "part"}]}]),
        line("c", url="/v1/completions", max_tokens=4),
    ]
    path = write(tmp_path, raw=b"\xef\xbb\xbf" + "\r\n".join(content).encode() + b"\r\n")
    requests = read_batch(path)
    assert [r.custom_id for r in requests] == ["a", "b", "c"]
    assert requests[0].body["messages"][1]["content"] == long_text
    assert requests[2].max_tokens == 4 and not requests[2].is_chat
    assert [r.line for r in requests] == [1, 2, 3]


def test_missing_file_is_a_file_level_error(tmp_path):
    with pytest.raises(BatchFileError, match=r"missing.jsonl: no such file$"):
        read_batch(tmp_path / "missing.jsonl")


def test_limit_and_sample(tmp_path):
    path = write(tmp_path, *[line(f"r{i}") for i in range(10)])
    assert [r.custom_id for r in read_batch(path, limit=3)] == ["r0", "r1", "r2"]
    picked = select(read_batch(path), 4, seed=1)
    assert len(picked) == 4 and picked == sorted(picked, key=lambda r: r.line)
    assert picked == select(read_batch(path), 4, seed=1)


messages = st.lists(
    st.fixed_dictionaries({"role": st.sampled_from(["system", "user", "assistant"]), "content": st.text(min_size=0)}),
    min_size=1,
    max_size=4,
)
one_line_ids = st.text(st.characters(exclude_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=20)
requests = st.lists(
    st.tuples(one_line_ids, messages, st.none() | st.integers(1, 4096)),
    min_size=1,
    max_size=20,
    unique_by=lambda t: t[0],
)


@settings(max_examples=50, deadline=None)
@given(requests)
def test_what_is_written_reads_back(tmp_path_factory, items):
    lines = [line(cid, messages=msgs, **({"max_tokens": mt} if mt else {})) for cid, msgs, mt in items]
    path = write(tmp_path_factory.mktemp("rt"), *lines)
    back = read_batch(path)
    assert [(r.custom_id, r.body["messages"], r.max_tokens) for r in back] == items


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 30), st.data())
def test_any_single_corrupted_line_is_reported_at_its_number(tmp_path_factory, n, data):
    lines = [line(f"id{i}") for i in range(n)]
    broken = data.draw(st.integers(0, n - 1))
    cut = data.draw(st.integers(1, len(lines[broken]) - 1))
    lines[broken] = lines[broken][:cut]  # a truncated line is never valid JSON
    path = write(tmp_path_factory.mktemp("corrupt"), *lines)
    errors = errors_of(path)
    assert len(errors) == 1 and errors[0].startswith(f"{path}:{broken + 1}: ")
