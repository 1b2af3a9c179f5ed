"""One line with n, penalties and stop does the same work offline and on the server (real CPU engine)."""

import json
from pathlib import Path

import pytest
from procs import run_pytest_isolated

pytestmark = pytest.mark.engine
REPO = Path(__file__).resolve().parents[1]
N, MAX_TOKENS = 3, 6


def test_offline_and_server_generate_the_same_tokens_for_n_penalties_and_stop(tmp_path):
    body = {
        "model": "gemma-270m",
        "messages": [{"role": "user", "content": "Count: one, two,"}],
        "n": N,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.3,
        "stop": ["never-appears-here"],
        "seed": 7,
        "temperature": 0.8,
        "max_tokens": MAX_TOKENS,
        "ignore_eos": True,
    }
    (tmp_path / "one.jsonl").write_text(
        json.dumps({"custom_id": "p", "method": "POST", "url": "/v1/chat/completions", "body": body}) + "\n"
    )
    (tmp_path / "test_batch.py").write_text((REPO / "benchmarks" / "test_batch.py").read_text())
    args = [
        "test_batch.py",
        "-p",
        "no:cacheprovider",
        "--model=gemma-270m",
        "--mode=offline",
        "--mode=server",
        "--dataset=one.jsonl",
        "--benchmark-save=parity",
        "--report=none",
    ]
    result, leftovers = run_pytest_isolated(args, tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    assert leftovers == []
    [saved] = (tmp_path / ".benchmarks").glob("*/0001_parity.json")
    cells = {b["extra_info"]["mode"]: b["extra_info"] for b in json.loads(saved.read_text())["benchmarks"]}
    assert cells["offline"]["n_failed"] == cells["server"]["n_failed"] == 0
    assert cells["offline"]["output_tokens"] == cells["server"]["output_tokens"] == N * MAX_TOKENS
