"""Live progress of one cell: requests done/total, failures, current req/s and output tok/s, ETA.

tqdm draws it (vLLM already depends on tqdm): in place on a terminal, one plain line every
`interval_s` otherwise (CI logs). Engines only call `finished()` once per finished request.
"""

from __future__ import annotations

import functools
import io
import time
from collections.abc import Callable
from typing import Any, TextIO

TextStream = TextIO | io.TextIOBase  # sys.stderr, or the plugin's stream through pytest's terminal writer

SMOOTHING = 0.3  # tqdm's own default for its req/s rate; the same for output tok/s
TTY_REFRESH_S = 0.5
LOG_INTERVAL_S = 10.0
# the bar last: on a narrow terminal tqdm shortens the line from its end, and the figures stay whole
TTY_FORMAT = "{desc}: {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]{postfix} |{bar}|"
LOG_FORMAT = "{desc}: {n_fmt}/{total_fmt} requests [{elapsed}<{remaining}, {rate_fmt}]{postfix}"


@functools.cache
def _bar_class() -> Any:
    """tqdm's bar with the cell's figures after it, made on first use: the plugin's import (every pytest session's)
    leaves tqdm out."""
    from tqdm import tqdm

    class _Bar(tqdm):  # type: ignore[type-arg]
        monitor_interval = 0  # no tqdm monitor thread: refreshes happen only when a request finishes

        def __init__(self, *args: Any, describe: Callable[[], str], **kwargs: Any) -> None:
            self._describe = describe
            super().__init__(*args, **kwargs)

        @property
        def format_dict(self) -> dict[str, Any]:
            figures = dict(super().format_dict)
            figures["postfix"] = self._describe()  # computed only when a line is drawn, not per request
            return figures

    return _Bar


class CellProgress:
    """One cell's progress. `finished` is the whole cost per request: a few counters and maybe a redraw."""

    def __init__(
        self,
        label: str,
        total: int,
        stream: TextStream,
        tty: bool,
        interval_s: float = LOG_INTERVAL_S,
        width: int | None = None,
    ) -> None:
        self.done = 0
        self.failed = 0
        self.output_tokens: int | None = 0  # None where the engine does not say (vLLM's own estimate is shown)
        self.note = ""
        self._last: tuple[float, int] | None = None
        self._tokens_rate: float | None = None
        self._started = time.monotonic()
        self._closing = False
        self._stream = stream
        self._bar = _bar_class()(
            total=total,
            desc=label,
            unit="req",
            file=stream if tty else _LineWriter(stream),
            leave=True,
            mininterval=TTY_REFRESH_S if tty else interval_s,
            maxinterval=float("inf"),
            miniters=1,
            ncols=width if tty else None,
            bar_format=TTY_FORMAT if tty else LOG_FORMAT,
            smoothing=SMOOTHING,
            describe=self._describe,
        )

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self._started

    def finished(self, ok: bool = True, output_tokens: int | None = 0) -> None:
        self.done += 1
        if not ok:
            self.failed += 1
        if output_tokens is None:
            self.output_tokens = None
        elif self.output_tokens is not None:
            self.output_tokens += output_tokens
        self._bar.update(1)

    def vllm_tqdm(self, *args: Any, **kwargs: Any) -> Any:
        """What `LLM.chat(..., use_tqdm=...)` calls: iterables (prompt rendering) pass through untouched, and
        the request bar it opens per call feeds this cell's progress."""
        if args or "iterable" in kwargs:
            return args[0] if args else kwargs["iterable"]
        return _VllmBar(self, kwargs.get("total") or 0)

    def close(self) -> None:
        self._closing = True  # the last line shows the whole cell's averages, as tqdm does for req/s
        self._bar.close()
        self._stream.flush()  # tqdm writes its closing newline without flushing

    def _describe(self) -> str:
        parts = [f"failed {self.failed}"]
        if self.output_tokens is not None:
            parts.append(f"out {self._current_tokens_rate():,.0f} tok/s")
        if self.note:
            parts.append(self.note)
        return ", ".join(parts)

    def _current_tokens_rate(self) -> float:
        """Output tok/s since the last line drawn, smoothed as tqdm smooths req/s."""
        now, tokens = time.monotonic(), self.output_tokens or 0
        if self._closing:
            return tokens / max(now - self._started, 1e-9)
        since, before = self._last or (self._started, 0)
        self._last = (now, tokens)
        if now - since <= 0 or self.done == 0:
            return self._tokens_rate or 0.0
        rate = (tokens - before) / (now - since)
        self._tokens_rate = (
            rate if self._tokens_rate is None else SMOOTHING * rate + (1 - SMOOTHING) * self._tokens_rate
        )
        return self._tokens_rate


class _VllmBar:
    """The part of tqdm's interface that vLLM's `LLM._run_engine` uses, forwarded to a CellProgress."""

    def __init__(self, progress: CellProgress, total: int) -> None:
        self._progress = progress
        self.total = total
        self.n = 0
        progress.output_tokens = None  # vLLM's update() carries no token count; its postfix estimates them

    @property
    def format_dict(self) -> dict[str, Any]:
        return {"elapsed": max(self._progress.elapsed_s, 1e-9), "n": self.n, "total": self.total}

    @property
    def postfix(self) -> str:
        return self._progress.note

    @postfix.setter
    def postfix(self, text: str) -> None:  # vLLM's "est. speed input: X toks/s, output: Y toks/s"
        self._progress.note = str(text)

    def update(self, n: int = 1) -> None:
        self.n += n
        for _ in range(n):
            self._progress.finished(True, None)

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


class _LineWriter(io.TextIOBase):
    """tqdm redraws with '\\r'; a log wants one plain line per redraw instead."""

    def __init__(self, stream: TextStream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        line = text.replace("\r", "").strip()
        if line:
            self._stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self._stream.flush()


class TerminalStream(io.TextIOBase):
    """A text stream that hands each flushed chunk to `write` (the plugin's: pytest's capture suspended)."""

    def __init__(self, write: Callable[[str], None], tty: bool) -> None:
        self._write = write
        self._tty = tty
        self._pending: list[str] = []

    def isatty(self) -> bool:
        return self._tty

    def write(self, text: str) -> int:
        self._pending.append(text)
        return len(text)

    def flush(self) -> None:
        if self._pending:
            text, self._pending = "".join(self._pending), []
            self._write(text)


ProgressFactory = Callable[[str, int], "CellProgress | None"]


def to_terminal(
    write: Callable[[str], None], tty: bool, interval_s: float = LOG_INTERVAL_S, width: int | None = None
) -> ProgressFactory:
    """A factory of cell progress bars drawn through `write` (`width`: the terminal's columns); each starts on a
    line of its own."""
    stream = TerminalStream(write, tty)

    def start(label: str, total: int) -> CellProgress:
        stream.write("\n")
        return CellProgress(label, total, stream, tty, interval_s, width)

    return start
