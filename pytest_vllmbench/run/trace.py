"""--trace-dir DIR (pytest owns --trace): one JSONL per cell with each request's timing, token counts and error kind; never its text."""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.common.files import first_line_json, refuse_foreign, write_text_atomic
from pytest_vllmbench.measure.metrics import RequestRecord

HEADER_KEY = "vllmbench_trace"  # the first line of every trace file: only files carrying it are ever overwritten
FIELDS = ("round", "custom_id", "send_s", "ttft_ms", "e2el_ms", "input_tokens", "output_tokens", "error")


class SendTimes:
    """Collects when each request was sent (the client's hook), relative to the round's start."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self._sent: dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(self, custom_id: str, at: float) -> None:
        with self._lock:
            self._sent.setdefault(custom_id, at - self.started)

    def get(self, custom_id: str) -> float | None:
        return self._sent.get(custom_id)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def trace_rows(round_index: int, records: Sequence[RequestRecord], sent: SendTimes | None) -> list[dict[str, Any]]:
    """One row per request. Offline cells submit the whole batch at once, so their send time is 0."""
    return [
        {
            "round": round_index,
            "custom_id": r.custom_id,
            "send_s": (round(t, 6) if (t := sent.get(r.custom_id)) is not None else None) if sent else 0.0,
            "ttft_ms": _ms(r.ttft_s),
            "e2el_ms": _ms(r.e2el_s),
            "input_tokens": r.input_tokens,
            "output_tokens": r.output_tokens,
            "error": r.error,
        }
        for r in records
    ]


def trace_path(folder: Path, cell_id: str) -> Path:
    return folder / f"{cell_id}.jsonl"


def check_trace_folder(folder: Path) -> None:
    """Before any engine starts: the folder exists (made if needed) and is writable."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # a fresh name made with O_EXCL: a link planted at a fixed probe name is never followed
        fd, probe = tempfile.mkstemp(prefix=".vllmbench-write-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"--trace-dir {folder}: {exc.strerror or exc}") from None


def ours(path: Path) -> bool:
    """Whether an existing file was written by this tool (its first line is our header)."""
    first = first_line_json(path)
    return isinstance(first, dict) and HEADER_KEY in first


def write_trace(path: Path, cell_id: str, rows: Sequence[dict[str, Any]]) -> None:
    """Atomically; an existing file this tool did not write is left alone (OSError says so)."""
    refuse_foreign(path, ours)
    header = {HEADER_KEY: 1, "cell": cell_id, "fields": list(FIELDS), "times": "send_s from the round's start"}
    lines = [json.dumps(header)] + [json.dumps(row, allow_nan=False) for row in rows]
    write_text_atomic(path, "\n".join(lines) + "\n")
