"""Run one cell: time the engine over the workload and turn its records into the cell's typed result."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_vllmbench.config.loads import LoadPoint
from pytest_vllmbench.config.modes import ModeSpec
from pytest_vllmbench.engines.base import Engine, SamplingOverrides
from pytest_vllmbench.engines.cell_plan import CellPlan
from pytest_vllmbench.measure.cell_record import CellResult, UndeclaredFigure
from pytest_vllmbench.measure.costs import cost_figures, energy_figures
from pytest_vllmbench.measure.gpu import GpuSampler
from pytest_vllmbench.measure.host_load import HostLoad, bound_by, preempted_pct
from pytest_vllmbench.measure.metrics import RequestRecord, summarize_spill
from pytest_vllmbench.measure.progress import ProgressFactory
from pytest_vllmbench.measure.record_spill import RecordSpill, SpilledRecords
from pytest_vllmbench.measure.roofline import roofline
from pytest_vllmbench.measure.rounds import round_figures, rounds_info
from pytest_vllmbench.measure.server_metrics import MetricsSampler
from pytest_vllmbench.run.trace import SendTimes, trace_rows
from pytest_vllmbench.workload.batch import BatchRequest

# A warm-up round sends the first requests only: enough for first-run kernel compilation and the engine's
# shapes, without doubling a GPU cell's time.
WARMUP_REQUESTS = 512
Timed = Callable[[Callable[[], None]], Any]  # runs fn as many rounds as configured, timing them


@dataclass(frozen=True)
class TimedRound:
    records: RecordSpill  # on disk, not in memory: a round of millions of requests costs no more memory
    wall_s: float
    sent: SendTimes | None  # each request's send time, under --trace-dir
    energy_j: float | None  # the cell's GPUs' energy over the round; None without a counter


@dataclass
class CellOutcome:
    result: CellResult  # the cell's figures, typed; result.extra_info() is what pytest-benchmark saves
    records: Sequence[RequestRecord] = ()  # the last round's, read back from its spill as they are iterated
    fault: str | None = None  # the engine broke during the cell; figures so far are in the result
    trace: list[dict[str, Any]] = field(default_factory=list)  # --trace rows, every timed round
    spill: RecordSpill | None = None
    rounds: list[dict[str, float | None]] = field(default_factory=list)  # this run's timed rounds' key figures

    def release(self) -> None:
        """Remove the last round's spilled records once the quality check and the outputs file have read them."""
        if self.spill is not None:
            self.spill.close()
            self.spill, self.records = None, ()


def run_cell(
    plan: CellPlan,
    engine: Engine,
    requests: Sequence[BatchRequest],
    sampling: SamplingOverrides,
    planned: CellResult,
    timed: Timed,
    bandwidths: dict[str, float] | None = None,
    pricing: tuple[float | None, str | None] = (None, None),
    progress: ProgressFactory | None = None,
    warmup: int = 0,
    trace: bool = False,
    earlier_rounds: Sequence[Mapping[str, float | None]] = (),
    interleaved: list[str] | None = None,
    beside_pids: frozenset[int] = frozenset(),
) -> CellOutcome:
    """The cell its plan names, on its GPUs, with its settings' --project-to and --slo. `planned` holds what the
    caller knows before the run (engine args, dataset: BenchSession.planned); the last round's records and energy count,
    and with several rounds each round's key figures are kept with their statistics. `pricing` is one GPU's
    hourly price and its currency label. `warmup` untimed rounds run first; `trace` keeps each request's timing for
    --trace (CellOutcome.trace). Under --interleave a call runs one of the cell's rounds: `earlier_rounds` are the
    key figures of its rounds so far, counted in its statistics, and `interleaved` the cells it alternates with.
    `beside_pids`: the processes of other engines idle beside this one, left out of its host load."""
    cell, mode = plan.cell, plan.mode
    project_to, slo_ms = plan.settings.project_to, plan.settings.slo_ms
    timed_rounds: list[TimedRound] = []
    client_side = mode.sweeps
    cell_load = cell.load if client_side else None

    def call(bar: Any, sent: SendTimes | None, batch: Sequence[BatchRequest] = requests) -> Iterable[RequestRecord]:
        return engine.run(batch, sampling, bar, cell_load, sent)

    cache_resets: list[bool | None] = []
    batch_spans: list[tuple[float, float]] = []
    host = HostLoad(engine.api_server_pids(), beside_pids)

    def one_round() -> None:
        cache_resets.append(engine.reset_prefix_cache())  # untimed: no round may hit the last round's cached blocks
        bar = progress(cell.id, len(requests)) if progress is not None else None
        sent = SendTimes() if trace and client_side else None
        spill = RecordSpill()
        produced: Iterable[RequestRecord] = ()
        try:
            energy_before = telemetry.energy_mj()
            host.start()
            started = time.perf_counter()
            produced = call(bar, sent)
            returned = time.perf_counter()
            for record in produced:  # a streaming engine does its work as its records are taken
                spill.append(record)
            # a list was done when run() returned; an engine that starts its own process per run (run-batch)
            # times the batch itself, without start-up
            ended = returned if isinstance(produced, Sequence) else time.perf_counter()
            wall_s = engine.batch_wall_s or ended - started
            if engine.batch_span is not None:
                batch_spans.append(engine.batch_span)
            host.stop()
            energy_after = telemetry.energy_mj()
        except BaseException:
            spill.close()
            close = getattr(produced, "close", None)  # a streaming engine stops sending now, not when collected
            if close is not None:
                close()
            raise
        finally:
            if bar is not None:
                bar.close()
        energy_j = None if energy_before is None or energy_after is None else (energy_after - energy_before) / 1000.0
        timed_rounds.append(TimedRound(spill, wall_s, sent, energy_j))  # summarized after the timing, not in it

    for _ in range(warmup):
        for _record in call(None, None, requests[:WARMUP_REQUESTS]):
            pass
    source = engine.metrics_source()
    try:
        with GpuSampler(plan.gpu_indices) as telemetry, MetricsSampler(source) as server_metrics:
            timed(one_round)
        summaries = [
            summarize_spill(done.records, done.wall_s, engine.load_s, project_to, slo_ms) for done in timed_rounds
        ]
        traced: list[dict[str, Any]] = []
        if trace:
            for number, done in enumerate(timed_rounds, start=1):
                traced.extend(trace_rows(number, SpilledRecords(done.records), done.sent))
    except BaseException:
        for done in timed_rounds:
            done.records.close()
        raise
    for done in timed_rounds[:-1]:
        done.records.close()
    rounds = [round_figures(summary) for summary in summaries]
    every_round = [*map(dict, earlier_rounds), *rounds]
    last = timed_rounds[-1]
    measured = CellResult.measured(
        {
            "cell": cell.id,
            "model": cell.model.alias,
            "model_source": cell.model.source,
            "params_b": cell.model.params_b,
            "dtype": cell.model.dtype,
            "mode": cell.mode,
            "engine": engine.describe(),
            "sampling": sampling.describe(),
            **planned.extra_info(),
            **(client_figures(plan) if client_side else {}),
            # a client-side cell saves null where its server has no /metrics; an offline engine without them, nothing
            **({"server_metrics": server_metrics.figures()} if client_side or server_metrics.available else {}),
            **({"slo_ms": dict(slo_ms)} if slo_ms else {}),
            **summaries[-1],  # the last round's
            **mode_figures(mode, engine),
            **rounds_info(every_round),
            **({"interleaved": interleaved} if interleaved else {}),
            **telemetry.figures(batch_spans),
            "warmup_rounds": warmup,
            "prefix_cache": prefix_cache_note(cache_resets),
        }
    )
    settings = engine.effective_settings()
    if settings is not None:
        measured = measured.with_figures({"engine_settings": settings})
    preempted = preempted_pct((measured.server_metrics or {}).get("preemptions"), measured.n_requests * len(rounds))
    measured = measured.with_figures(host_figures(mode, host, measured.gpu_util_mean_pct, preempted))
    gpus = measured.gpus or []
    measured = measured.with_figures(roofline(measured, gpus, bandwidths or {}))
    completed = measured.n_requests - measured.n_failed
    measured = measured.with_figures(energy_figures(last.energy_j, completed, measured.output_tokens, project_to))
    measured = measured.with_figures(
        cost_figures(pricing[0], pricing[1], len(gpus), measured.output_tokens_per_s, measured.projected_hours)
    )
    return CellOutcome(measured, SpilledRecords(last.records), engine.fault(), traced, last.records, rounds)


def client_figures(plan: CellPlan) -> dict[str, Any]:
    """What a cell whose requests a client sends saves: its load point and its sweep."""
    load = plan.cell.load or LoadPoint(plan.settings.concurrency, plan.settings.request_rate)
    figures: dict[str, Any] = {"load": load.describe()}
    return figures | ({"sweep": plan.cell.sweep} if plan.cell.load is not None else {})


def mode_figures(mode: ModeSpec, engine: Engine) -> dict[str, Any]:
    """The figures only the mode's engine knows; each one its ModeSpec declares."""
    figures = engine.cell_figures()
    if undeclared := sorted(set(figures) - set(mode.figures)):
        raise UndeclaredFigure(
            f"mode {mode.name!r}: its engine gave figures its ModeSpec does not declare: {undeclared}"
        )
    return figures


def host_figures(
    mode: ModeSpec, host: HostLoad, gpu_busy_pct: float | None, preempted: float | None = None
) -> dict[str, Any]:
    """CPU share per role, vLLM's preemptions per 100 requests and what bounds the cell; a server not ours is not
    ours to measure, nor an engine that starts inside the round (its processes are not there when the round's CPU
    times are first read)."""
    measured = mode.owns_engine and not mode.engine_in_round
    figures: dict[str, Any] = host.figures(has_api_server=mode.api_servers, has_engine_core=measured)
    figures["preempted_pct"] = preempted
    figures["bound_by"] = bound_by(gpu_busy_pct, figures, preempted)
    return figures


def prefix_cache_note(resets: list[bool | None]) -> str:
    """`resets`: one per timed round, None where the engine offers no reset."""
    if not resets or None in resets:
        return "not reset (the engine offers no reset)"
    if all(resets):
        return "reset before each timed round"
    if any(resets):
        return "reset failed before some timed rounds"
    return "not reset (the reset failed)"
