"""Endpoint mode's failures that need no engine: nothing listening, and URL spelling."""

import socket
from pathlib import Path

import pytest

from pytest_vllmbench.engines.endpoint import normalize_base_url

REPO = Path(__file__).resolve().parents[1]
REPO_TEST = "def test_batch(vllmbench_cell, benchmark):\n    vllmbench_cell.run(benchmark)\n"


def closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_endpoint_fails_the_cell_naming_url_and_model(pytester):
    pytester.makepyfile(test_batch=REPO_TEST)
    url = f"http://127.0.0.1:{closed_port()}"
    result = pytester.runpytest(
        "--mode=endpoint",
        f"--endpoint={url}",
        "--model=gemma3:12b",
        "--limit=2",
        f"--dataset={REPO / 'data' / 'batch_5k.jsonl'}",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [f"*gemma-12b-endpoint: engine did not start: cannot reach {url}/v1/models (model 'gemma3:12b'): ConnectError*"]
    )
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize("url", ["http://h:11434", "http://h:11434/", "http://h:11434/v1", "http://h:11434/v1/"])
def test_base_url_is_normalized(url):
    assert normalize_base_url(url) == "http://h:11434/v1"
