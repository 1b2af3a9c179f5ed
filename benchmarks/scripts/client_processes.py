"""Does a second client process lift a client-bound cell? One process against two, on a paced stand-in server.

`sse_stub.py --running R --step-ms T` streams each answer token by token, R at a time, as an engine's decode loop
would (a stand-in: not vLLM, only the shape of its output), so the client reads about one event per token. The
batch goes out through the cells' own sender (engines/client_processes.py) at 1 and at N processes, alternating,
`--trials` times each. Prints each setting's req/s and its busiest client process's share of one core (the
figure a cell's `cpu_client_pct` is), and the ratio of the means with the trials' range. Usage:
    .venv/bin/python benchmarks/scripts/client_processes.py [--processes 2] [--requests 3000] [--chunks 128]
        [--running 512] [--step-ms 2] [--trials 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil
from client_ceiling import STUB, requests_for

from pytest_vllmbench.engines.base import SamplingOverrides
from pytest_vllmbench.engines.client_processes import Sender
from pytest_vllmbench.engines.openai_client import ClientConfig
from pytest_vllmbench.engines.server import free_port


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    times = {}
    for pid in pids:
        cpu = psutil.Process(pid).cpu_times()
        times[pid] = cpu.user + cpu.system
    return times


def trial(base_url: str, processes: int, n: int, chunks: int) -> tuple[float, float]:
    """(req/s, busiest client process's CPU as % of one core) for one batch."""
    sender = Sender(processes)
    try:
        sender.wait_ready()
        pids = sorted(sender.pids()) or [os.getpid()]
        config = ClientConfig(base_url, "stub", timeout_s=600, processes=processes)
        before, started = cpu_seconds(pids), time.perf_counter()
        records = list(sender.send(requests_for(n), SamplingOverrides(max_tokens=chunks), config, None))
        wall = time.perf_counter() - started
        after = cpu_seconds(pids)
    finally:
        sender.close()
    assert all(r.ok and r.output_tokens == chunks for r in records), "the client saw failures"
    busiest = max(after[pid] - before[pid] for pid in pids)
    return n / wall, 100 * busiest / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--chunks", type=int, default=128)
    parser.add_argument("--running", type=int, default=512)
    parser.add_argument("--step-ms", type=float, default=2.0)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    port = free_port()
    stub = subprocess.Popen(
        [sys.executable, str(STUB), str(port), str(args.chunks), "--running", str(args.running),
         "--step-ms", str(args.step_ms)],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    results: dict[int, list[tuple[float, float]]] = {1: [], args.processes: []}
    try:
        assert stub.stdout is not None and stub.stdout.readline().strip() == "ready"
        base_url = f"http://127.0.0.1:{port}/v1"
        for _ in range(args.trials):
            for processes in (1, args.processes):
                results[processes].append(trial(base_url, processes, args.requests, args.chunks))
    finally:
        os.killpg(stub.pid, signal.SIGTERM)
        stub.wait()

    figures: dict[str, object] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "stand_in": f"sse_stub.py, {args.running} answers at once, one token each per {args.step_ms:g} ms",
        "requests": args.requests,
        "tokens_per_answer": args.chunks,
        "trials": args.trials,
        "order": f"1, {args.processes}, alternating",
    }
    for processes, runs in results.items():
        figures[f"p{processes}_requests_per_s"] = [round(rate, 1) for rate, _ in runs]
        figures[f"p{processes}_busiest_client_pct"] = [round(pct, 1) for _, pct in runs]
    one = [rate for rate, _ in results[1]]
    more = [rate for rate, _ in results[args.processes]]
    figures["ratio_of_means"] = round(statistics.mean(more) / statistics.mean(one), 3)
    figures["ratio_range"] = [round(min(more) / max(one), 3), round(max(more) / min(one), 3)]
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
