"""A batch file cannot flood the terminal or memory: long values are cut in messages, long lines and files
that never end are refused with the file and line (issue 24)."""

from __future__ import annotations

import json
import os

import pytest

from pytest_vllmbench import cli
from pytest_vllmbench.common.cut import cut, shown
from pytest_vllmbench.workload import batch
from pytest_vllmbench.workload.batch import BatchFileError, iter_batch, read_batch

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
MB = 2**20


def line(custom_id: str = "a", body: dict | None = None) -> str:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body or BODY})


def test_cut_keeps_short_text_and_says_how_long_a_cut_one_was():
    assert cut("short") == "short"
    assert cut("x" * MB, 10) == "xxxxxxxxxx... (1048576 characters)"
    assert len(shown("y" * MB)) < 120 and len(shown(list(range(MB)))) < 120


@pytest.mark.parametrize(
    "lines",
    [
        [line(body={**BODY, "k" * MB: 1})],  # an unsupported key a megabyte long
        [line(body={**BODY, "metadata": {"n" * MB: "\ud800"}})],  # a lone surrogate under a huge key
        [line("i" * MB), line("i" * MB)],  # a duplicate custom_id a megabyte long
        [line(body={**BODY, "temperature": "t" * MB})],
    ],
)
def test_an_error_line_never_holds_a_huge_value_whole(tmp_path, lines):
    path = tmp_path / "batch.jsonl"
    path.write_text("\n".join(lines) + "\n")
    messages = [item for item in iter_batch(path) if isinstance(item, str)]
    assert messages and all(len(message) < len(str(path)) + 1000 for message in messages)


def test_dev_zero_or_a_fifo_is_refused_as_not_a_regular_file(tmp_path, capsys):
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    for path in ("/dev/zero", str(fifo)):
        assert cli.main(["validate", path]) == 1
        assert f"{path}: not a regular file" in capsys.readouterr().err
        with pytest.raises(BatchFileError, match="not a regular file"):
            read_batch(path)


def test_a_line_past_the_cap_is_refused_unread_and_the_next_line_still_counts(tmp_path, monkeypatch):
    monkeypatch.setattr(batch, "MAX_LINE_BYTES", 4096)
    path = tmp_path / "batch.jsonl"
    path.write_text(line("a") + "\n" + "z" * 20_000 + "\n" + line("b") + "\n")
    items = list(iter_batch(path))
    assert items[1] == f"{path}:2: line longer than 4096 bytes"
    assert [item.custom_id for item in items if not isinstance(item, str)] == ["a", "b"]
    assert items[2].line == 3  # type: ignore[union-attr]


def test_a_file_with_no_newline_at_all_is_one_refused_line(tmp_path, monkeypatch):
    monkeypatch.setattr(batch, "MAX_LINE_BYTES", 4096)
    path = tmp_path / "batch.jsonl"
    path.write_bytes(b"\0" * 100_000)
    assert list(iter_batch(path)) == [f"{path}:1: line longer than 4096 bytes"]


def test_validate_summary_shows_a_huge_or_multi_line_model_cut_on_one_line(tmp_path, capsys):
    path = tmp_path / "b.jsonl"
    huge, forged = {**BODY, "model": "m" * 100_000}, {**BODY, "model": "x\n\x1b[2Jforged"}
    path.write_text(line("a", huge) + "\n" + line("b", forged) + "\n")
    assert cli.main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "\x1b" not in out and "(100000 characters)" in out and len(out) < 1000
