"""Live progress: what a terminal and a CI log see, and vLLM's progress hook fed through it."""

import io

from pytest_vllmbench.measure.progress import CellProgress, TerminalStream, to_terminal


def log_lines(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line]


def test_log_mode_prints_plain_lines_with_counts_failures_and_rates():
    out = io.StringIO()
    progress = CellProgress("gemma-270m-server", 3, out, tty=False, interval_s=0.0)
    progress.finished(True, 10)
    progress.finished(False, 0)
    progress.finished(True, 12)
    progress.close()
    lines = log_lines(out)
    assert "\r" not in out.getvalue()
    assert lines[0].startswith("gemma-270m-server: 0/3 requests")
    assert lines[-1].startswith("gemma-270m-server: 3/3 requests") and "failed 1" in lines[-1]
    assert "req/s" in lines[-1] and "tok/s" in lines[-1]


def test_log_mode_is_periodic_not_per_request():
    out = io.StringIO()
    progress = CellProgress("cell", 500, out, tty=False, interval_s=3600.0)
    for _ in range(500):
        progress.finished(True, 4)
    progress.close()
    lines = log_lines(out)
    assert len(lines) == 2  # the start and the end, nothing in between within the interval
    assert lines[-1].startswith("cell: 500/500 requests")


def test_terminal_mode_redraws_in_place():
    out = io.StringIO()
    progress = CellProgress("cell", 4, out, tty=True)
    for _ in range(4):
        progress.finished(True, 8)
    progress.close()
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")  # one line, rewritten with carriage returns
    assert "\r" in text and "4/4" in text.rsplit("\r", 1)[1] and "failed 0" in text


def test_vllm_progress_hook_passes_iterables_and_counts_finished_requests():
    """What vLLM's LLM._run_engine does with `use_tqdm=callable` (vLLM 0.26 and 0.32)."""
    out = io.StringIO()
    progress = CellProgress("gemma-270m-offline", 2, out, tty=False, interval_s=0.0)
    conversations = [["a"], ["b"]]
    assert progress.vllm_tqdm(conversations, desc="Rendering conversations") is conversations
    bar = progress.vllm_tqdm(total=2, desc="Processed prompts", dynamic_ncols=True, postfix="est. speed ...")
    for _ in range(2):
        assert bar.format_dict["elapsed"] > 0
        bar.postfix = "est. speed input: 100.00 toks/s, output: 20.00 toks/s"
        bar.update(1)
        if bar.n == 2:
            bar.refresh()
    bar.close()
    progress.close()
    last = log_lines(out)[-1]
    assert last.startswith("gemma-270m-offline: 2/2 requests") and "output: 20.00 toks/s" in last
    assert "out 0 tok/s" not in last  # the engine gave no token counts: vLLM's own estimate is shown instead


def test_a_closed_terminal_bar_has_written_its_last_line_and_newline():
    written = []
    start = to_terminal(written.append, tty=True, width=80)
    bar = start("cell", 1)
    bar.finished(True, 3)
    bar.close()
    assert "".join(written).endswith("\n") and "1/1" in "".join(written).rsplit("\r", 1)[1]


def test_terminal_stream_writes_once_per_flush_and_factory_starts_a_new_line():
    written = []
    stream = TerminalStream(written.append, tty=False)
    stream.write("a")
    stream.write("b")
    assert written == []
    stream.flush()
    assert written == ["ab"] and not stream.isatty()
    start = to_terminal(written.append, tty=False)
    bar = start("cell", 1)
    bar.finished(True, 1)
    bar.close()
    assert written[1] == "\n" or "".join(written[1:]).startswith("\n")
    assert "cell: 1/1 requests" in "".join(written)


def test_terminal_bar_fills_the_width_it_is_given():
    out = io.StringIO()
    progress = CellProgress("cell", 2, out, tty=True, width=100)
    progress.finished(True, 1)
    progress.close()
    assert max(len(line) for line in out.getvalue().replace("\n", "").split("\r")) == 100
