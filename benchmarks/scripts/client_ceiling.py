"""How fast can the benchmark client go? Ours vs `vllm bench serve`'s client on the same zero-work stub.

Both clients stream the same canned chat-completion SSE responses from a local stub server
(another process) at the same concurrency, in alternating trials; the best trial of each counts.
Prints requests/s and chunks/s of each and the ratio ours / vLLM's. Usage:
    .venv/bin/python benchmarks/scripts/client_ceiling.py [--requests 2000] [--concurrency 64] [--chunks 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

from pytest_vllmbench.engines.base import SamplingOverrides
from pytest_vllmbench.engines.openai_client import ClientConfig, send_requests
from pytest_vllmbench.engines.server import free_port
from pytest_vllmbench.workload.batch import BatchRequest

STUB = Path(__file__).with_name("sse_stub.py")


def requests_for(n: int) -> list[BatchRequest]:
    body = {"model": "stub", "messages": [{"role": "user", "content": "Rate this candidate."}]}
    return [BatchRequest(f"r{i}", "/v1/chat/completions", body, i + 1) for i in range(n)]


def ours(base_url: str, n: int, concurrency: int, chunks: int) -> float:
    config = ClientConfig(base_url, "stub", concurrency=concurrency, timeout_s=120)
    started = time.perf_counter()
    records = send_requests(requests_for(n), SamplingOverrides(max_tokens=chunks), config)
    wall = time.perf_counter() - started
    assert all(r.ok and r.output_tokens == chunks for r in records), "our client saw failures"
    return wall


def vllms(base_url: str, n: int, concurrency: int, chunks: int) -> float:
    import aiohttp
    from vllm.benchmarks.lib.endpoint_request_func import RequestFuncInput, async_request_openai_chat_completions

    async def go() -> float:
        # the same session settings as vllm/benchmarks/serve.py
        connector = aiohttp.TCPConnector(
            limit=concurrency,
            limit_per_host=concurrency,
            ttl_dns_cache=300,
            use_dns_cache=True,
            keepalive_timeout=60,
            enable_cleanup_closed=True,
            force_close=False,
        )
        async with aiohttp.ClientSession(
            connector=connector, trust_env=True, timeout=aiohttp.ClientTimeout(total=6 * 3600)
        ) as session:
            gate = asyncio.Semaphore(concurrency)

            async def one(i: int):
                item = RequestFuncInput(
                    prompt="Rate this candidate.",
                    api_url=f"{base_url}/chat/completions",
                    prompt_len=100,
                    output_len=chunks,
                    model="stub",
                )
                async with gate:
                    return await async_request_openai_chat_completions(item, session)

            started = time.perf_counter()
            outputs = await asyncio.gather(*(one(i) for i in range(n)))
            wall = time.perf_counter() - started
            assert all(o.success for o in outputs), "vLLM's client saw failures"
            return wall

    return asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--chunks", type=int, default=32)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    port = free_port()
    stub = subprocess.Popen(
        [sys.executable, str(STUB), str(port), str(args.chunks)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert stub.stdout is not None and stub.stdout.readline().strip() == "ready"
        base_url = f"http://127.0.0.1:{port}/v1"
        walls: dict[str, list[float]] = {"ours": [], "vllm": []}
        for _ in range(args.trials):
            walls["ours"].append(ours(base_url, args.requests, args.concurrency, args.chunks))
            walls["vllm"].append(vllms(base_url, args.requests, args.concurrency, args.chunks))
    finally:
        os.killpg(stub.pid, signal.SIGTERM)
        stub.wait()

    chunks_per_request = args.chunks + 3  # role chunk, content chunks, usage chunk, [DONE]
    figures = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "requests": args.requests,
        "concurrency": args.concurrency,
        "content_chunks": args.chunks,
        "trials": args.trials,
    }
    for name, times in walls.items():
        best = min(times)
        figures[f"{name}_requests_per_s"] = round(args.requests / best, 1)
        figures[f"{name}_chunks_per_s"] = round(args.requests * chunks_per_request / best, 0)
        figures[f"{name}_walls_s"] = [round(t, 3) for t in times]
    figures["ratio_ours_over_vllm"] = round(figures["ours_requests_per_s"] / figures["vllm_requests_per_s"], 3)
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
