"""Run one cell: time the engine over the workload and turn its records into extra_info."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_vllmbench.config.loads import SWEEP_MODES, LoadPoint
from pytest_vllmbench.config.matrix import Cell
from pytest_vllmbench.engines.base import Engine, SamplingOverrides
from pytest_vllmbench.measure.cell_record import saved_figures
from pytest_vllmbench.measure.costs import cost_figures, energy_figures
from pytest_vllmbench.measure.gpu import GpuSampler
from pytest_vllmbench.measure.host_load import HostLoad, bound_by
from pytest_vllmbench.measure.metrics import RequestRecord, summarize
from pytest_vllmbench.measure.progress import ProgressFactory
from pytest_vllmbench.measure.roofline import roofline
from pytest_vllmbench.measure.rounds import round_figures, rounds_info
from pytest_vllmbench.measure.server_metrics import MetricsSampler
from pytest_vllmbench.run.trace import SendTimes, trace_rows
from pytest_vllmbench.workload.batch import BatchRequest

# A warm-up round sends the first requests only: enough for first-run kernel compilation and the engine's
# shapes, without doubling a GPU cell's time.
WARMUP_REQUESTS = 512
Timed = Callable[[Callable[[], None]], Any]  # runs fn as many rounds as configured, timing them


@dataclass
class CellOutcome:
    extra_info: dict[str, Any]
    records: list[RequestRecord] = field(default_factory=list)
    fault: str | None = None  # the engine broke during the cell; figures so far are in extra_info
    trace: list[dict[str, Any]] = field(default_factory=list)  # --trace rows, every timed round


def run_cell(
    cell: Cell,
    engine: Engine,
    requests: Sequence[BatchRequest],
    sampling: SamplingOverrides,
    context: dict[str, Any],
    project_to: int,
    timed: Timed,
    slo_ms: dict[str, float] | None = None,
    gpu_indices: list[int] | None = None,
    bandwidths: dict[str, float] | None = None,
    pricing: tuple[float | None, str | None] = (None, None),
    progress: ProgressFactory | None = None,
    warmup: int = 0,
    load: LoadPoint | None = None,
    trace: bool = False,
) -> CellOutcome:
    """`context` holds what the caller knows (engine args, dataset); the last round's records and energy count,
    and with several rounds each round's key figures are kept with their statistics. `pricing` is one GPU's
    hourly price and its currency label. `warmup` untimed rounds run first; `load` is the cell's sweep point;
    `trace` keeps each request's timing for --trace (CellOutcome.trace)."""
    last: dict[str, Any] = {}
    timed_rounds: list[tuple[list[RequestRecord], float, SendTimes | None]] = []
    client_side = cell.mode in SWEEP_MODES

    def call(bar: Any, sent: SendTimes | None, batch: Sequence[BatchRequest] = requests) -> list[RequestRecord]:
        # without a bar, load or trace the call is exactly as before (engines written against the old interface)
        extra: dict[str, Any] = {}
        if client_side and cell.load is not None:
            extra["load"] = cell.load
        if sent is not None:
            extra["on_sent"] = sent
        if bar is None and not extra:
            return engine.run(batch, sampling)
        return engine.run(batch, sampling, bar, **extra)

    reset_cache = getattr(engine, "reset_prefix_cache", None)
    cache_resets: list[bool] = []
    host = HostLoad(engine.api_server_pids() if hasattr(engine, "api_server_pids") else frozenset())

    def one_round() -> None:
        if reset_cache is not None:  # untimed: no round may hit the prefix-cache blocks of the one before
            cache_resets.append(bool(reset_cache()))
        bar = progress(cell.id, len(requests)) if progress is not None else None
        sent = SendTimes() if trace and client_side else None
        try:
            energy_before = telemetry.energy_mj()
            host.start()
            started = time.perf_counter()
            last["records"] = call(bar, sent)
            # an engine that starts its own process per run (run-batch) times the batch itself, without start-up
            last["wall_s"] = getattr(engine, "batch_wall_s", None) or time.perf_counter() - started
            host.stop()
            energy_after = telemetry.energy_mj()
        finally:
            if bar is not None:
                bar.close()
        if energy_before is None or energy_after is None:
            last["energy_j"] = None
        else:
            last["energy_j"] = (energy_after - energy_before) / 1000.0
        timed_rounds.append((last["records"], last["wall_s"], sent))  # summarized after the timing, not in it

    for _ in range(warmup):
        call(None, None, requests[:WARMUP_REQUESTS])
    source = engine.metrics_source() if client_side and hasattr(engine, "metrics_source") else None
    with GpuSampler(gpu_indices) as telemetry, MetricsSampler(source) as server_metrics:
        timed(one_round)
    rounds = [round_figures(summarize(done, wall, engine.load_s, project_to, slo_ms)) for done, wall, _ in timed_rounds]
    traced: list[dict[str, Any]] = []
    if trace:
        for number, (done, _, sent) in enumerate(timed_rounds, start=1):
            traced.extend(trace_rows(number, done, sent))
    records: list[RequestRecord] = last["records"]
    info: dict[str, Any] = {
        "cell": cell.id,
        "model": cell.model.alias,
        "model_source": cell.model.source,
        "params_b": cell.model.params_b,
        "dtype": cell.model.dtype,
        "mode": cell.mode,
        "engine": engine.describe(),
        "sampling": sampling.describe(),
        **context,
    }
    if client_side:
        info["load"] = (load or LoadPoint()).describe()
        if cell.load is not None:
            info["sweep"] = cell.sweep
        info["server_metrics"] = server_metrics.figures()  # None: the server has no /metrics to read
    if slo_ms:
        info["slo_ms"] = dict(slo_ms)
    info |= summarize(records, last["wall_s"], engine.load_s, project_to, slo_ms)
    info |= getattr(engine, "cell_figures", dict)()
    info |= rounds_info(rounds)
    info |= telemetry.figures()
    info |= host_figures(cell.mode, host, info.get("gpu_util_mean_pct"))
    info["warmup_rounds"] = warmup
    info["prefix_cache"] = prefix_cache_note(cache_resets)
    settings = engine.effective_settings() if hasattr(engine, "effective_settings") else None
    if settings is not None:
        info["engine_settings"] = settings
    info |= roofline(info, info["gpus"], bandwidths or {})
    info |= energy_figures(last["energy_j"], info["n_requests"] - info["n_failed"], info["output_tokens"], project_to)
    info |= cost_figures(
        pricing[0], pricing[1], len(info["gpus"]), info["output_tokens_per_s"], info["projected_hours"]
    )
    return CellOutcome(saved_figures(info), records, engine.fault(), traced)


def host_figures(mode: str, host: HostLoad, gpu_busy_pct: float | None) -> dict[str, Any]:
    """CPU share per role and what bounds the cell; an endpoint's server is not ours to measure."""
    figures: dict[str, Any] = host.figures(has_api_server=mode == "server", has_engine_core=mode != "endpoint")
    figures["bound_by"] = bound_by(gpu_busy_pct, figures)
    return figures


def prefix_cache_note(resets: list[bool]) -> str:
    if resets and all(resets):
        return "reset before each timed round"
    if any(resets):
        return "reset failed before some timed rounds"
    return "not reset (the engine offers no reset)" if not resets else "not reset (the reset failed)"
