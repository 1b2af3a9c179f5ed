"""An offline engine's start failure carries what vLLM's processes printed (fast: no engine; vLLM is faked)."""

import multiprocessing
import os
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_vllmbench.config.registry import load_registry
from pytest_vllmbench.engines.base import EngineStartError
from pytest_vllmbench.engines.dummy_weights import does_not_fit
from pytest_vllmbench.engines.start_output import MAX_LINE, StartOutput, failure_reason, relevant_lines

# vLLM 0.26's engine-core log when the weights fit and one max-length sequence's KV cache does not (seen on the H200)
KV_LOG = (
    "(EngineCore_DP0 pid=4242) ERROR 11-30 15:02:11 [core.py:866] ValueError: To serve at least one request "
    "with the model's max seq len (8192), (1.0 GiB KV cache is needed, which is larger than the available KV "
    "cache memory (0.47 GiB). Based on the available memory, the estimated maximum model length is 3856."
)


def test_output_of_processes_started_inside_is_kept_and_still_shown(capfd):
    with StartOutput() as output:
        subprocess.run(
            [sys.executable, "-c", "import sys; print('child out'); print('ValueError: boom', file=sys.stderr)"],
            check=True,
        )
        os.write(2, b"parent line\n")
    lines = output.lines()
    assert {"child out", "ValueError: boom", "parent line"} <= set(lines)
    out, err = capfd.readouterr()
    assert "child out" in out and "ValueError: boom" in err and "parent line" in err
    os.write(1, b"after the block\n")  # this process's own fds are back where they were
    assert "after the block" in capfd.readouterr().out and "after the block" not in output.lines(settle_s=0.1)


def test_a_process_that_outlives_the_block_is_still_forwarded_until_it_exits(capfd):
    with StartOutput() as output:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5); print('later', flush=True)"])
    child.wait(10)
    assert "later" in output.lines()
    assert "later" in capfd.readouterr().out


def _print_from_a_forked_process() -> None:
    print("ValueError: printed by a forked engine core", flush=True)  # through the inherited sys.stdout object


def test_a_forked_process_writing_through_a_captured_sys_stdout_is_kept(capfd):
    """vLLM forks its engine core on a GPU; under pytest, the child's sys.stdout is pytest's capture file, whose
    fd is not 1 (seen on the H200: the engine core's reason never reached the pipes on fds 1 and 2)."""
    assert sys.stdout.fileno() not in (1, 2)  # capfd's capture file, as in a benchmark session
    with StartOutput() as output:
        child = multiprocessing.get_context("fork").Process(target=_print_from_a_forked_process)
        child.start()
        child.join(10)
    assert "ValueError: printed by a forked engine core" in output.lines()
    assert "printed by a forked engine core" in capfd.readouterr().out


def test_failure_reason_is_the_last_exception_line_without_the_log_prefix():
    lines = ["INFO loading", "\x1b[1;31mERROR\x1b[0m RuntimeError: first", KV_LOG, "Traceback (most recent call last):"]
    assert failure_reason(lines).startswith("ValueError: To serve at least one request with the model's max seq len")
    assert failure_reason(["INFO all good"]) is None
    front_end = "RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}"
    dead = "vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. See stack trace (above) for the root cause."
    assert failure_reason([KV_LOG, "Traceback (most recent call last):", front_end, dead]) == failure_reason([KV_LOG])
    assert failure_reason([front_end, dead]) is None


def test_relevant_lines_hide_credentials_and_machine_paths():
    lines = [
        "INFO weights in /home/alice/models/secret-project/model.safetensors took 0.5 GiB memory",
        "ERROR http://user:hunter22@10.0.0.1/v1 said: RuntimeError: boom",
        "INFO unrelated",
    ]
    picked = relevant_lines(lines)
    assert picked == [
        "INFO weights in model.safetensors took 0.5 GiB memory",
        "ERROR http://<redacted>@10.0.0.1/v1 said: RuntimeError: boom",
    ]


@given(st.lists(st.text(max_size=700), max_size=60), st.integers(min_value=1, max_value=20))
def test_relevant_lines_are_few_short_distinct_and_in_order(lines, limit):
    picked = relevant_lines(lines, limit)
    assert len(picked) <= limit and len(set(picked)) == len(picked)
    assert all(len(line) <= MAX_LINE and "\x1b[" not in line for line in picked)
    kept = [relevant_lines([line], 1) for line in lines]  # each pick comes from one input line, in input order
    positions = [
        next(i for i in range(len(lines)) if kept[i] == [p] and i >= start)
        for start, p in _running_starts(picked, kept)
    ]
    assert positions == sorted(positions)


def _running_starts(picked, kept):
    start = 0
    for p in picked:
        yield start, p
        start = next(i for i in range(start, len(kept)) if kept[i] == [p])


FAKE_VLLM = textwrap.dedent('''
    import subprocess, sys
    class LLM:
        """FAKE vllm.LLM: its 'engine core' child prints vLLM's KV-cache error, the parent gets the generic one."""
        def __init__(self, **kwargs):
            subprocess.run([sys.executable, "-c", "import sys; print(sys.argv[1])", LOG], check=True)
            raise RuntimeError("Engine core initialization failed. See root cause above. Failed core proc(s): {}")
''')


def test_offline_engine_start_error_names_the_engine_cores_reason(tmp_path, monkeypatch):
    (tmp_path / "vllm.py").write_text(FAKE_VLLM.replace("LOG", repr(KV_LOG)))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "vllm", raising=False)
    from pytest_vllmbench.engines.offline import OfflineEngine

    with pytest.raises(EngineStartError) as raised:
        OfflineEngine("/models/mistral-7b", {})
    message = str(raised.value)
    first = message.splitlines()[0]
    assert first.startswith("vllm.LLM('/models/mistral-7b') failed: ValueError: To serve at least one request")
    assert first.endswith(
        "(RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {})"
    )
    assert "the engine printed:" in message
    mistral = load_registry().models["mistral-7b"]
    assert does_not_fit(message, mistral, [143771], 0.1139, 16.0, 1) == (
        "does not fit in 16 GiB: needs ~13.5 GiB for the weights alone, plus 1.0 GiB of KV cache for "
        "max_model_len 8192 (0.47 GiB was left for it)"
    )


def test_a_generic_start_failure_keeps_its_own_message(tmp_path, monkeypatch):
    (tmp_path / "vllm.py").write_text(
        "class LLM:\n    def __init__(self, **kw):\n        raise OSError('no such model')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "vllm", raising=False)
    from pytest_vllmbench.engines.offline import OfflineEngine

    with pytest.raises(EngineStartError, match=r"^vllm.LLM\('m'\) failed: OSError: no such model$"):
        OfflineEngine("m", {})
