"""A line means one thing to every reader: no key given twice in one object, no custom_id that could forge a line
where it is written (red-team findings 1 and 2); `validate` and a session refuse both at the same FILE:LINE."""

import json
from pathlib import Path

import pytest
from test_fake_mode import fake_mode_project

from pytest_vllmbench import cli
from pytest_vllmbench.workload.batch import BatchFileError, BatchRequest, iter_batch, read_batch
from pytest_vllmbench.workload.batch_file import open_batch
from tests.fake_mode import FAKE_MODE

ENVELOPE = '"method": "POST", "url": "/v1/chat/completions"'
BODY = '{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'


def line(custom_id: str = "a") -> str:
    return json.dumps(
        {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": json.loads(BODY)}
    )


def raw_line(body: str = BODY, custom_id: str = '"custom_id": "a"') -> str:
    return f'{{{custom_id}, {ENVELOPE}, "body": {body}}}'


REPEATED = {  # raw line -> the key it gives twice, as the message names it
    raw_line(custom_id='"custom_id": "a", "custom_id": "b"'): "custom_id",
    raw_line(BODY[:-1] + ', "model": "other"}'): "model",
    raw_line(BODY.replace('"role": "user"', '"role": "user", "role": "system"')): "role",
    raw_line(BODY[:-1] + ', "metadata": {"k": {"\\u001b": 1, "\\u001b": 2}}}'): "'\\x1b'",
}


def write(tmp_path: Path, bad: str) -> Path:
    path = tmp_path / "b.jsonl"
    path.write_text(line("good") + "\n" + bad + "\n")
    return path


@pytest.mark.parametrize("raw", list(REPEATED), ids=list(REPEATED.values()))
def test_a_key_given_twice_in_one_object_is_refused_naming_file_line_and_key(tmp_path, raw):
    path = write(tmp_path, raw)
    items = list(iter_batch(path))
    assert isinstance(items[0], BatchRequest)
    assert items[1] == f"{path}:2: key {REPEATED[raw]} given twice in one object: readers differ on which counts"


@pytest.mark.parametrize("raw", list(REPEATED), ids=list(REPEATED.values()))
def test_the_session_readers_refuse_a_repeated_key_with_the_same_message(tmp_path, capsys, raw):
    path = write(tmp_path, raw)
    expected = f"{path}:2: key {REPEATED[raw]} given twice"
    for reader in (read_batch, open_batch):
        with pytest.raises(BatchFileError) as error:
            reader(path)
        assert expected in str(error.value)
    assert cli.main(["validate", str(path)]) == 1
    assert expected in capsys.readouterr().err


CONTROL_IDS = ["a\nb", "a\rb", "\x1b[31mred\x1b[0m", "a\x00b", "a\tb", "a\x85b", "a\u2028b", "a\x7fb"]


@pytest.mark.parametrize("custom_id", CONTROL_IDS, ids=[repr(text) for text in CONTROL_IDS])
def test_a_custom_id_with_a_control_character_is_refused_at_its_line(tmp_path, capsys, custom_id):
    path = write(tmp_path, line(custom_id))
    items = list(iter_batch(path))
    assert isinstance(items[0], BatchRequest) and isinstance(items[1], str)
    assert items[1].startswith(f"{path}:2: custom_id {custom_id!r} holds a control character or line break")
    assert items[1].isprintable()  # the message itself shows it escaped
    assert cli.main(["validate", str(path)]) == 1
    assert f"{path}:2: custom_id" in capsys.readouterr().err


def test_a_custom_id_of_printable_unicode_is_still_accepted(tmp_path):
    path = write(tmp_path, line("caf\u00e9 \U0001f600 \u00a0x"))
    assert all(isinstance(item, BatchRequest) for item in iter_batch(path))


@pytest.mark.parametrize(
    "bad",
    [raw_line(custom_id='"custom_id": "a", "custom_id": "b"'), line("a\nINJECTED")],
    ids=["repeated key", "line break in custom_id"],
)
def test_a_session_stops_with_exit_4_at_file_line_never_a_traceback(pytester, bad):
    fake_mode_project(pytester)  # an engine that answers in-process: a file let through starts no vLLM
    path = pytester.path / "bad.jsonl"
    path.write_text(line("ok") + "\n" + bad + "\n")
    result = pytester.runpytest_subprocess(
        "benchmarks", "-p", "no:cacheprovider", f"--dataset={path}", "--model=my-model", f"--mode={FAKE_MODE.name}"
    )
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output[-3000:]
    assert f"{path}:2: " in output and "Traceback" not in output
