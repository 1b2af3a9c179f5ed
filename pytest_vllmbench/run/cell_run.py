"""Run one cell: time the engine over the workload and turn its records into extra_info."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_vllmbench.config.matrix import Cell
from pytest_vllmbench.engines.base import Engine, SamplingOverrides
from pytest_vllmbench.measure.cell_record import CellRecord
from pytest_vllmbench.measure.costs import cost_figures, energy_figures
from pytest_vllmbench.measure.gpu import GpuSampler
from pytest_vllmbench.measure.metrics import RequestRecord, summarize
from pytest_vllmbench.measure.progress import ProgressFactory
from pytest_vllmbench.measure.roofline import roofline
from pytest_vllmbench.workload.batch import BatchRequest

Timed = Callable[[Callable[[], None]], Any]  # runs fn as many rounds as configured, timing them


@dataclass
class CellOutcome:
    extra_info: dict[str, Any]
    records: list[RequestRecord] = field(default_factory=list)
    fault: str | None = None  # the engine broke during the cell; figures so far are in extra_info


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
) -> CellOutcome:
    """`context` holds what the caller knows (engine args, dataset); the last round's records and energy count.
    `pricing` is one GPU's hourly price and its currency label."""
    last: dict[str, Any] = {}

    def one_round() -> None:
        bar = progress(cell.id, len(requests)) if progress is not None else None
        try:
            energy_before = telemetry.energy_mj()
            started = time.perf_counter()
            # without a bar the call is exactly as before (engines written against the old interface still run)
            last["records"] = engine.run(requests, sampling) if bar is None else engine.run(requests, sampling, bar)
            last["wall_s"] = time.perf_counter() - started
            # an engine that starts its own process per run (run-batch) times the batch itself, without start-up
            last["wall_s"] = getattr(engine, "batch_wall_s", None) or last["wall_s"]
            energy_after = telemetry.energy_mj()
        finally:
            if bar is not None:
                bar.close()
        if energy_before is None or energy_after is None:
            last["energy_j"] = None
        else:
            last["energy_j"] = (energy_after - energy_before) / 1000.0

    with GpuSampler(gpu_indices) as telemetry:
        timed(one_round)
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
    info |= summarize(records, last["wall_s"], engine.load_s, project_to, slo_ms)
    info |= getattr(engine, "cell_figures", dict)()
    info |= telemetry.figures()
    info |= roofline(info, info["gpus"], bandwidths or {})
    info |= energy_figures(last["energy_j"], info["n_requests"] - info["n_failed"], info["output_tokens"], project_to)
    info |= cost_figures(pricing[0], pricing[1], len(info["gpus"]), info["output_tokens_per_s"],
                         info["projected_hours"])
    return CellOutcome(CellRecord.from_figures(info).to_extra_info(), records, engine.fault())
