"""Runs a command and samples, once a second while it runs, the CPU use of the processes around a vLLM benchmark
beside NVML's GPU busy %: the client (the command's own process tree), the API server(s) and the engine core(s)
(found in the command's tree and in a hand-started server's tree, `--server-pid`). Writes the series as JSON.

Usage: host_load.py --out series.json [--server-pid PID] -- COMMAND...
Exit status: the command's. Roles: a process whose name or command line has "EngineCore" or "Worker" is the
engine core (its workers counted with it);
"api_server", " serve" or "APIServer" an API server; anything else in the command's tree is the client.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

import psutil


def role(process: psutil.Process, client_root: int) -> str:
    try:
        text = process.name() + " " + " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "gone"
    if "EngineCore" in text or "Worker" in text:  # vLLM's titles: VLLM::EngineCore, VLLM::Worker / VllmWorker
        return "engine-core"
    if process.pid != client_root and ("api_server" in text or " serve" in text or "APIServer" in text):
        return "api-server"
    return "client"


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def gpu_busy() -> Any:
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        return lambda: float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    except Exception:  # no GPU here: the series says so with None
        return lambda: None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--server-pid", type=int, default=None)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()
    busy = gpu_busy()
    child = subprocess.Popen(args.command)
    last: dict[int, tuple[float, str]] = {}
    series: list[dict[str, Any]] = []
    start = previous = time.monotonic()
    while True:
        try:
            code = child.wait(args.interval)
        except subprocess.TimeoutExpired:
            code = None
        now = time.monotonic()
        processes = tree(child.pid) + (tree(args.server_pid) if args.server_pid else [])
        sample: dict[str, Any] = {"t": round(now - start, 2), "gpu_busy_pct": busy(), "cpu": {}, "max_one": {}}
        for process in processes:
            try:
                cpu = sum(process.cpu_times()[:2])
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            kind = role(process, child.pid)
            before, _ = last.get(process.pid, (cpu, kind))
            last[process.pid] = (cpu, kind)
            pct = 100.0 * (cpu - before) / max(now - previous, 1e-6)
            sample["cpu"][kind] = round(sample["cpu"].get(kind, 0.0) + pct, 1)
            sample["max_one"][kind] = round(max(sample["max_one"].get(kind, 0.0), pct), 1)
        previous = now
        series.append(sample)
        if code is not None:
            break
    with open(args.out, "w") as out:
        json.dump({"command": args.command[:6], "exit": code, "series": series}, out)
    return code


if __name__ == "__main__":
    sys.exit(main())
