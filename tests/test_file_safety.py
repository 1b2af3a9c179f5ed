"""File writes never follow a planted link and never open a FIFO (issue 24)."""

import os
import threading

import pytest

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.common.files import write_bytes_atomic, write_text_atomic
from pytest_vllmbench.run.trace import check_trace_folder, write_trace


def test_the_trace_folder_probe_never_truncates_a_planted_links_target(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    traces = tmp_path / "traces"
    traces.mkdir()
    (traces / ".vllmbench-write-probe").symlink_to(victim)
    check_trace_folder(traces)
    assert victim.read_text() == "precious"


def test_a_trace_folder_that_cannot_be_written_is_still_a_usage_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match="--trace-dir"):
        check_trace_folder(tmp_path / "file" / "traces")


def _finishes(target, *args) -> BaseException | None:
    """Run target in a thread; fail the test (not hang it) when it blocks."""
    caught: list[BaseException] = []

    def run() -> None:
        try:
            target(*args)
        except BaseException as exc:  # handed back to the test
            caught.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive(), f"{target.__name__} hung"
    return caught[0] if caught else None


def test_a_fifo_at_the_trace_path_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "cell.jsonl"
    os.mkfifo(fifo)
    error = _finishes(write_trace, fifo, "cell", [])
    assert isinstance(error, OSError)
    assert "not a regular file" in str(error)


def test_a_symlink_at_the_trace_path_is_left_alone(tmp_path):
    victim = tmp_path / "victim.jsonl"
    victim.write_text('{"vllmbench_trace": 1}\n')
    link = tmp_path / "cell.jsonl"
    link.symlink_to(victim)
    with pytest.raises(OSError, match="symlink"):
        write_trace(link, "cell", [])
    assert link.is_symlink()
    assert victim.read_text() == '{"vllmbench_trace": 1}\n'


@pytest.mark.parametrize("write", [write_text_atomic, lambda path, text: write_bytes_atomic(path, text.encode())])
def test_atomic_writes_refuse_a_fifo_or_a_link_at_the_target(tmp_path, write):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    for name in ("fifo", "link"):
        with pytest.raises(OSError, match="not overwritten"):
            write(tmp_path / name, "x")
    assert not (tmp_path / "elsewhere").exists()
    write(tmp_path / "plain", "x")
    assert (tmp_path / "plain").read_text() == "x"
