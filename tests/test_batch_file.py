"""The streamed batch file: the same requests as the list reader, the same errors, and nothing held."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_vllmbench.workload.batch import BatchFileError, read_batch, select
from pytest_vllmbench.workload.batch_file import BatchFile, open_batch
from tests.test_workload import BAD_LINES, line, write


def test_the_stream_gives_the_list_readers_requests_each_time_it_is_read(tmp_path):
    path = write(tmp_path, *(line(f"r{i}", **({"max_tokens": i + 1} if i % 2 else {})) for i in range(7)), "", "")
    streamed = open_batch(path)
    assert len(streamed) == 7
    assert list(streamed) == read_batch(path) == list(streamed)  # re-readable, trailing blank lines ignored
    assert [r.line for r in streamed] == list(range(1, 8))


def test_a_byte_order_mark_is_skipped(tmp_path):
    path = write(tmp_path, raw=b"\xef\xbb\xbf" + (line("a") + "\n" + line("b") + "\n").encode())
    assert [r.custom_id for r in open_batch(path)] == ["a", "b"]


@pytest.mark.parametrize("message", sorted(BAD_LINES))
def test_bad_lines_are_reported_with_file_and_line_as_before(tmp_path, message):
    path = write(tmp_path, line("a"), BAD_LINES[message], line("b"))
    with pytest.raises(BatchFileError) as streamed:
        open_batch(path)
    with pytest.raises(BatchFileError) as listed:
        read_batch(path)
    assert streamed.value.errors == listed.value.errors
    assert streamed.value.errors[0].startswith(f"{path}:2: ") and message in streamed.value.errors[0]


def test_duplicates_blank_lines_missing_and_empty_files_are_refused_by_name(tmp_path):
    dup = write(tmp_path, line("a"), line("b"), line("a"), name="dup.jsonl")
    with pytest.raises(BatchFileError, match=r"dup.jsonl:3: duplicate custom_id 'a' \(first on line 1\)"):
        open_batch(dup)
    blank = write(tmp_path, line("a"), "", line("b"), name="blank.jsonl")
    with pytest.raises(BatchFileError, match=r"blank.jsonl:2: empty line"):
        open_batch(blank)
    with pytest.raises(BatchFileError, match="no such file"):
        open_batch(tmp_path / "absent.jsonl")
    with pytest.raises(BatchFileError, match="empty file"):
        open_batch(write(tmp_path, raw=b"\n\n", name="empty.jsonl"))


def test_limit_reads_the_first_requests_but_validates_the_whole_file(tmp_path):
    path = write(tmp_path, *(line(f"r{i}") for i in range(10)))
    first = open_batch(path, limit=4)
    assert [r.custom_id for r in first] == ["r0", "r1", "r2", "r3"]
    assert len(open_batch(path, limit=50)) == 10
    bad = write(tmp_path, line("a"), line("b"), "[1]", name="bad.jsonl")
    with pytest.raises(BatchFileError, match=r"bad\.jsonl:3"):
        open_batch(bad, limit=1)  # a bad line after the limit still fails the file, as read_batch does


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(count=st.integers(1, 30), sample=st.integers(1, 35), seed=st.integers(0, 5), prefix=st.integers(0, 40))
def test_sample_and_prefix_views_match_the_list(tmp_path, count, sample, seed, prefix):
    path = write(tmp_path, *(line(f"r{i}") for i in range(count)), name=f"b{count}.jsonl")
    listed, streamed = read_batch(path), open_batch(path)
    picked = select(streamed, sample, seed)
    assert list(picked) == select(listed, sample, seed)
    assert list(picked[:prefix]) == list(select(listed, sample, seed))[:prefix]
    assert list(streamed[:prefix]) == listed[:prefix]
    assert [picked[i] for i in range(len(picked))] == list(picked)
    assert picked[-1] == list(picked)[-1] and streamed[1:3] == listed[1:3]


def test_a_file_changed_after_validation_is_refused_not_misread(tmp_path):
    path = write(tmp_path, line("a"), line("b"))
    streamed = open_batch(path)
    path.write_text(line("a") + "\n" + line("c") + "\n" + line("d") + "\n")
    os.utime(path, ns=(1, 1))
    with pytest.raises(BatchFileError, match="changed since it was validated"):
        list(streamed)


def test_a_view_holds_no_request(tmp_path):
    path = write(tmp_path, *(line(f"r{i}") for i in range(200)))
    streamed = open_batch(path)
    assert isinstance(streamed, BatchFile) and streamed.picked is None  # a count and a path, not 200 requests
    assert vars(streamed).keys() == {"path", "first", "picked", "_stamp"}
