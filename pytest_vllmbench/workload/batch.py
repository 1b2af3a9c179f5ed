"""Read OpenAI Batch API JSONL files (one reader for every mode): every problem reported with its file and line."""

from __future__ import annotations

import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pytest_vllmbench.common.cut import shown
from pytest_vllmbench.workload.batch_line import CHAT_URL, parse_line

MAX_REPORTED_ERRORS = 50
MAX_LINE_BYTES = 64 * 2**20  # a longer line is refused unread: a file without newlines must not fill memory
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class BatchRequest:
    custom_id: str
    url: str
    body: dict[str, Any]
    line: int

    @property
    def model(self) -> str:
        return str(self.body["model"])

    @property
    def is_chat(self) -> bool:
        return self.url == CHAT_URL

    @property
    def max_tokens(self) -> int | None:
        return self.body.get("max_completion_tokens", self.body.get("max_tokens"))


class BatchFileError(Exception):
    """A batch file with one or more invalid lines; `errors` holds `FILE:LINE: what` texts."""

    def __init__(self, path: Path, errors: list[str], total: int) -> None:
        """`total` counts invalid lines; 0 means a file-level error (missing, empty)."""
        self.path = path
        self.errors = errors
        self.total = total
        header = f"{path}: {total} invalid line(s)\n" if total else ""
        more = f"\n... and {total - len(errors)} more" if total > len(errors) else ""
        super().__init__(header + "\n".join(errors) + more)


def read_batch(path: Path | str, limit: int | None = None) -> list[BatchRequest]:
    """Every request of `path` (the first `limit` if given); raises BatchFileError listing the bad lines."""
    path = Path(path)
    if not path.exists():
        raise BatchFileError(path, [f"{path}: no such file"], 0)
    requests: list[BatchRequest] = []
    errors: list[str] = []
    total_errors = 0
    for item in iter_batch(path):
        if isinstance(item, str):
            total_errors += 1
            if len(errors) < MAX_REPORTED_ERRORS:
                errors.append(item)
        elif limit is None or len(requests) < limit:
            requests.append(item)
    if total_errors and not requests and errors[0].startswith(f"{path}: "):  # the file itself, not a line
        raise BatchFileError(path, errors, 0)
    if not requests and not total_errors:
        raise BatchFileError(path, [f"{path}: empty file (no requests)"], 0)
    if total_errors:
        raise BatchFileError(path, errors, total_errors)
    return requests


def iter_batch(path: Path, check_duplicates: bool = True) -> Iterator[BatchRequest | str]:
    """Yield a BatchRequest per good line and a `FILE:LINE: message` string per bad one. Without
    `check_duplicates` a repeated custom_id is not looked for (it costs a dict entry a line)."""
    seen: dict[str, int] = {}
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO or device would block or never end
            yield f"{path}: not a regular file (a directory, FIFO or device): give a JSONL file"
            return
        handle = path.open("rb")
    except OSError as exc:
        yield f"{path}: cannot open: {exc.strerror}"
        return
    with handle:
        pending_blank: list[int] = []
        for number, raw in enumerate(file_lines(handle), start=1):
            if raw is None:
                yield f"{path}:{number}: line longer than {MAX_LINE_BYTES} bytes"
                continue
            if number == 1 and raw.startswith(BOM):
                raw = raw[len(BOM) :]
            if not raw.strip():
                pending_blank.append(number)  # blank lines only matter when a request follows
                continue
            for blank in pending_blank:
                yield f"{path}:{blank}: empty line"
            pending_blank.clear()
            try:
                parsed = parse_line(raw)
            except ValueError as exc:
                yield f"{path}:{number}: {exc}"
                continue
            custom_id = parsed["custom_id"]
            if not check_duplicates:
                yield BatchRequest(custom_id, parsed["url"], parsed["body"], number)
                continue
            if custom_id in seen:
                yield f"{path}:{number}: duplicate custom_id {shown(custom_id)} (first on line {seen[custom_id]})"
                continue
            seen[custom_id] = number
            yield BatchRequest(custom_id, parsed["url"], parsed["body"], number)


def file_lines(handle: BinaryIO) -> Iterator[bytes | None]:
    """The file's lines, each None when longer than MAX_LINE_BYTES (read past in pieces, never held whole)."""
    while raw := handle.readline(MAX_LINE_BYTES + 1):
        if len(raw) <= MAX_LINE_BYTES or raw.endswith(b"\n"):
            yield raw
            continue
        while (rest := handle.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
            pass
        yield None


def select(requests: Sequence[BatchRequest], sample: int | None, seed: int) -> Sequence[BatchRequest]:
    """`sample` requests drawn without replacement, kept in file order; all when sample is None. A view that
    can pick (a BatchFile) picks, so the file is still read as it is needed."""
    if sample is None or sample >= len(requests):
        return requests
    import random

    picked = sorted(random.Random(seed).sample(range(len(requests)), sample))
    pick = getattr(requests, "pick", None)
    return pick(picked) if pick is not None else [requests[i] for i in picked]
