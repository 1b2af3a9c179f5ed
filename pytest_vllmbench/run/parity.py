"""`vllm bench throughput` on the same engine args and random workload, for the parity cell's ratio."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from pytest_vllmbench.engines.supervisor import SessionProcess
from pytest_vllmbench.engines.vllm_cli import cli_flags, log_report, log_tail


def bench_throughput_command(
    model: str, engine_args: dict[str, Any], input_len: int, output_len: int, num_prompts: int, output_json: Path
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "vllm.entrypoints.cli.main",
        "bench",
        "throughput",
        "--model",
        model,
        "--dataset-name",
        "random",
        "--input-len",
        str(input_len),
        "--output-len",
        str(output_len),
        "--num-prompts",
        str(num_prompts),
        "--output-json",
        str(output_json),
        *cli_flags(engine_args),
    ]


def vllm_bench_requests_per_s(
    model: str,
    engine_args: dict[str, Any],
    input_len: int,
    output_len: int,
    num_prompts: int,
    timeout_s: float = 900.0,
    stop_grace_s: float = 20.0,
) -> float:
    """Runs vLLM's own benchmark in a child process session (the cell's engine must be closed first: one GPU);
    whatever it started is stopped before this returns, also when it runs past `timeout_s` (SIGTERM, then SIGKILL
    after `stop_grace_s`)."""
    with tempfile.TemporaryDirectory() as folder:
        out, log = Path(folder) / "throughput.json", Path(folder) / "bench.log"
        process = SessionProcess(
            bench_throughput_command(model, engine_args, input_len, output_len, num_prompts, out),
            log,
            grace_s=stop_grace_s,
        )
        try:
            code = process.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            process.stop(stop_grace_s)
        if code is None:
            raise RuntimeError(f"vllm bench throughput did not finish in {timeout_s:.0f} s:\n{log_tail(log, 15)}")
        if code != 0 or not out.is_file():
            raise RuntimeError(f"vllm bench throughput failed (exit {code}); {log_report(log, 15)}")
        return float(json.loads(out.read_text())["requests_per_second"])
