"""One benchmark session: settings, the workload (read once) and the engine slot (one live engine)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.common.files import sha256_of
from pytest_vllmbench.common.redaction import redact_args, redact_text, secret_values, strip_paths
from pytest_vllmbench.config.matrix import Cell, build_matrix
from pytest_vllmbench.config.modes import mode_spec
from pytest_vllmbench.config.registry import Registry
from pytest_vllmbench.config.settings import Settings
from pytest_vllmbench.engines.base import CellSkip, DoesNotFit, SamplingOverrides
from pytest_vllmbench.engines.cell_plan import CellPlan, DummySources, plan_cell
from pytest_vllmbench.measure.cell_record import SCHEMA, CellResult
from pytest_vllmbench.measure.metrics import RequestRecord
from pytest_vllmbench.measure.progress import ProgressFactory
from pytest_vllmbench.measure.quality import score_quality
from pytest_vllmbench.measure.roofline import load_bandwidths
from pytest_vllmbench.run.batch_output import outputs_path, write_batch_output
from pytest_vllmbench.run.cell_run import CellOutcome, Timed, run_cell
from pytest_vllmbench.run.engine_slot import EngineSlot
from pytest_vllmbench.run.engine_start import start_engine, start_engine_ahead
from pytest_vllmbench.run.interleave import group_ids
from pytest_vllmbench.run.parity import vllm_bench_requests_per_s
from pytest_vllmbench.run.trace import trace_path, write_trace
from pytest_vllmbench.workload.batch import BatchRequest, select
from pytest_vllmbench.workload.batch_file import open_batch
from pytest_vllmbench.workload.gold import load_gold
from pytest_vllmbench.workload.random_spec import is_random, parse_random_spec, random_requests

QualityHook = Callable[[str, Sequence[BatchRequest], Sequence[RequestRecord], Any], "dict[str, Any] | None"]


def dataset_label_path(path: Path, rootdir: Path) -> str:
    """Relative to the project root when inside it, else the file name; random:IN:OUT:N as written."""
    if is_random(path):
        return str(path)
    for inside, root in (
        (Path(os.path.abspath(path)), Path(os.path.abspath(rootdir))),
        (path.resolve(), rootdir.resolve()),
    ):
        if inside.is_relative_to(root):
            return inside.relative_to(root).as_posix()
    return path.name


def model_source_label(source: str, rootdir: Path) -> str:
    """An HF id as it is; a local model folder the way datasets are shown, never as an absolute path."""
    return dataset_label_path(Path(source), rootdir) if Path(source).is_absolute() else source


class BenchSession:
    def __init__(self, settings: Settings, registry: Registry, rootdir: Path) -> None:
        self.settings = settings
        self.registry = registry
        self.rootdir = rootdir
        self.engine_slot = EngineSlot(
            lambda plan: start_engine(plan),
            keep_model_engines=settings.interleave,
            start_ahead=(lambda plan: start_engine_ahead(plan)) if settings.start_ahead else None,
        )
        self.run_order: list[str] | None = None  # the cell ids this session runs, in order (None: every cell)
        self.dummies = DummySources()  # each model's dummy-weight config and tokenizer, looked for once
        self.sampling = SamplingOverrides(settings.max_tokens, settings.ignore_eos)
        self.unrun: list[CellResult] = []
        self.warmed: dict[tuple[str, str], int] = {}  # each engine's warm-up rounds: a sweep warms its server once
        self.rounds_so_far: dict[str, list[dict[str, float | None]]] = {}  # --interleave: each cell's rounds run
        self.traces_so_far: dict[str, list[dict[str, Any]]] = {}  # --interleave with --trace-dir: their rows

    @cached_property
    def cells(self) -> list[Cell]:
        """Built on first use, so pytest runs that collect no benchmark never read the batch file."""
        return build_matrix(
            self.settings.models or self.dataset_models(),
            self.settings.modes,
            self.registry,
            self.settings.load_points,
            self.settings.api_server_count,
        )

    @cached_property
    def workload(self) -> Sequence[BatchRequest]:
        """Validated once (raises BatchFileError naming every bad line), then read from the file as each use
        needs it: a batch file is never held in memory whole."""
        requests: Sequence[BatchRequest]
        if self.settings.random_dataset:
            requests = random_requests(self.settings.random_dataset, self.settings.seed)[: self.settings.limit]
        else:
            requests = open_batch(self.settings.dataset, limit=self.settings.limit)
        return select(requests, self.settings.sample, self.settings.seed)

    def dataset_models(self) -> tuple[str, ...]:
        """The models the batch lines name, in order of first use; each must be known to the registry."""
        first_line: dict[str, int] = {}
        for request in self.workload:
            first_line.setdefault(request.model, request.line)
        if set(self.settings.modes) == {"endpoint"}:
            return tuple(first_line)  # whatever the endpoint serves; its /v1/models decides
        for name, line in first_line.items():
            try:
                self.registry.resolve(name)
            except UsageError:
                raise UsageError(
                    f"{self.settings.dataset}:{line}: model {name!r} is not in the registry "
                    f"({', '.join(sorted(self.registry.models))}); pass --model to choose the model instead"
                ) from None
        return tuple(first_line)

    @cached_property
    def dataset_info(self) -> dict[str, Any]:
        """The dataset by a label that is the same on every machine: never an absolute path."""
        return {
            "path": dataset_label_path(self.settings.dataset, self.rootdir),
            "sha256": None if self.settings.random_dataset else sha256_of(self.settings.dataset),
            "transform": self.settings.dataset_transform,
            "limit": self.settings.limit,
            "sample": self.settings.sample,
            "seed": self.settings.seed if self.settings.sample else None,
        }

    @cached_property
    def bandwidths(self) -> dict[str, float]:
        return load_bandwidths(self.settings.gpu_bandwidth_gbps)

    @cached_property
    def gold(self) -> dict[str, dict[str, Any]] | None:
        return None if self.settings.random_dataset else load_gold(self.settings.dataset)

    def plan(self, cell: Cell) -> CellPlan:
        """The cell's plan, made once: every later question about the cell (run, fit, unrun record) reads it."""
        return plan_cell(cell, self.settings, self.registry, self.dummies, self.engines_alive_with(cell))

    def engines_alive_with(self, cell: Cell) -> int:
        """How many engines live at once while the cell runs: under --interleave, every engine of its model."""
        if not self.settings.interleave:
            return 1
        return len(
            {
                other.engine_key
                for other in self.cells
                if other.model.alias == cell.model.alias and mode_spec(other.mode).owns_engine
            }
        )

    def run(
        self,
        plan: CellPlan,
        timed: Timed,
        quality_hook: QualityHook | None = None,
        progress: ProgressFactory | None = None,
    ) -> CellOutcome:
        """Measure the cell, then score its outputs in memory and write them only if asked to."""
        cell, requests = plan.cell, self.workload
        if plan.over_budget is not None:
            raise DoesNotFit(plan.over_budget)  # the weights alone are over the budget: no engine need start
        if plan.cannot_run_here is not None:
            raise CellSkip(plan.cannot_run_here)  # before any engine import or model-hub lookup
        engine = self.engine_slot.get(plan, self.ahead_of(plan))
        warmup = 0 if cell.engine_key in self.warmed else self.warmup_rounds(plan)
        interleaved = group_ids(self.cells, cell) if self.settings.interleave else None
        earlier = list(self.rounds_so_far.get(cell.id, []))  # as they were before this call's round
        outcome = run_cell(
            plan,
            engine,
            requests,
            self.sampling,
            self.planned(plan),
            timed,
            bandwidths=self.bandwidths,
            pricing=(self.settings.gpu_hourly_cost, self.settings.cost_currency),
            progress=progress,
            warmup=warmup,
            trace=self.settings.trace_dir is not None,
            earlier_rounds=earlier,
            interleaved=interleaved,
            beside_pids=self.engine_slot.beside(cell.engine_key),
        )
        self.warmed.setdefault(cell.engine_key, warmup)
        outcome.result = outcome.result.with_figures({"warmup_rounds": self.warmed[cell.engine_key]})
        if cell.engine_key in self.engine_slot.overlapped:
            outcome.result = outcome.result.with_figures({"load_overlapped": True})
        try:
            quality = quality_hook(cell.id, requests, outcome.records, self.gold) if quality_hook else None
            outcome.result = outcome.result.with_figures(
                quality if quality is not None else score_quality(requests, outcome.records, self.gold)
            )
            if self.settings.write_outputs:
                path = outputs_path(self.settings.write_outputs, cell.id)
                try:
                    write_batch_output(path, requests, outcome.records, cell.requested)
                except OSError as exc:  # the measurement is kept; the cell carries the error and fails
                    outcome.result = outcome.result.with_figures({"outputs_error": f"{path}: {exc.strerror or exc}"})
        finally:
            outcome.release()  # the texts were graded and written: their spill goes
        if self.settings.interleave:  # one test per round: its cell's rounds so far count (those that ended whole)
            self.rounds_so_far.setdefault(cell.id, []).extend(outcome.rounds)
            this_call = [row | {"round": row["round"] + len(earlier)} for row in outcome.trace]  # numbered from 1
            outcome.trace = self.traces_so_far.setdefault(cell.id, [])
            outcome.trace.extend(this_call)
        if self.settings.trace_dir is not None:
            path = trace_path(self.settings.trace_dir, cell.id)
            try:
                write_trace(path, cell.id, outcome.trace)
                outcome.result = outcome.result.with_figures({"trace_file": path.name})
            except OSError as exc:  # like --write-outputs: the figures are kept, the cell fails saying why
                outcome.result = outcome.result.with_figures(
                    {"outputs_error": f"--trace-dir {path}: {exc.strerror or exc}"}
                )
        if self.settings.vllm_bench_parity and self.settings.random_dataset and cell.mode == "offline":
            outcome.result = outcome.result.with_figures(self._parity(plan, outcome.result.requests_per_s))
        return outcome

    def ahead_of(self, plan: CellPlan) -> CellPlan | None:
        """--start-ahead: the plan of the next engine this session runs, if it may load beside this cell's. CPU
        engines only: on a GPU the two would share its memory, which would change what each cell measures."""
        if not self.settings.start_ahead or not plan.mode.owns_engine or plan.on_gpu:
            return None
        by_id = {cell.id: cell for cell in self.cells}
        order = [by_id[cell_id] for cell_id in self.run_order or by_id if cell_id in by_id]
        later = order[next((i for i, cell in enumerate(order) if cell.id == plan.cell.id), len(order)) :]
        following = next((cell for cell in later if cell.engine_key != plan.cell.engine_key), None)
        if following is None or mode_spec(following.mode).start_ahead is None:
            return None
        ahead = self.plan(following)
        if ahead.on_gpu or ahead.over_budget is not None or ahead.cannot_run_here is not None:
            return None
        if plan.memory_share + ahead.memory_share > MAX_SHARE_TOGETHER:  # on the CPU a share of RAM each
            return None
        return ahead

    def warmup_rounds(self, plan: CellPlan) -> int:
        """--warmup, or by default one round where the cell runs on a GPU (first-run kernel compilation)."""
        if self.settings.warmup is not None:
            return self.settings.warmup
        return 1 if plan.gpu_indices and plan.on_gpu else 0

    def _parity(self, plan: CellPlan, ours: float | None) -> dict[str, Any]:
        """vLLM's own `bench throughput` on the same engine args and workload, after ours is closed."""
        self.engine_slot.close()  # one GPU: the reference run needs the memory
        input_len, output_len, count = parse_random_spec(self.settings.random_dataset or "")
        try:
            theirs = vllm_bench_requests_per_s(
                plan.model_source,
                plan.engine_args,
                input_len,
                output_len,
                min(count, len(self.workload)),
            )
        except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as exc:
            return {
                "vllm_bench_requests_per_s": None,
                "vllm_bench_ratio": None,
                "vllm_bench_error": strip_paths(self.scrub(str(exc)))[-2000:],
            }
        ratio = None if ours is None else round(ours / theirs, 4)
        return {"vllm_bench_requests_per_s": round(theirs, 4), "vllm_bench_ratio": ratio}

    def planned(self, plan: CellPlan) -> CellResult:
        """What is known of a cell before it runs, saved whether it runs or not: what it is, its engine args
        (redacted: the engine gets them as they are), the dataset, stand-in weights and the memory budget."""
        cell = plan.cell
        return CellResult.given(
            {
                "cell": cell.id,
                "model": cell.model.alias,
                "model_source": model_source_label(cell.model.source, self.rootdir),
                "params_b": cell.model.params_b,
                "dtype": cell.model.dtype,
                "mode": cell.mode,
                "engine_args": redact_args(plan.engine_args),
                **({"engine_args_set": redact_args(plan.user_args)} if plan.user_args else {}),
                "dataset": self.dataset_info,
                **plan.weights_info(),
                **({"gpu_memory_budget_gib": plan.budget_gib} if plan.budget_gib is not None else {}),
                **({"client_processes": plan.client_processes} if plan.client_processes > 1 else {}),
            }
        )

    def record_unrun(self, plan: CellPlan, status: str) -> None:
        """A cell that could not be measured ('does not fit: ...', 'failed: ...', 'skipped: ...')."""
        unrun = {"vllmbench_schema": SCHEMA, "status": strip_paths(self.scrub(status))}
        self.unrun[:] = [cell for cell in self.unrun if cell.cell != plan.cell.id]  # once, for all its rounds
        self.unrun.append(self.planned(plan).with_figures(unrun))

    def scrub(self, text: str) -> str:
        """Text from elsewhere (an engine's error, a server's log tail) with this session's secrets hidden."""
        settings = self.settings
        return redact_text(text, secret_values(settings.endpoint, settings.engine_args, settings.api_key))

    def close(self) -> None:
        self.engine_slot.close()


# --start-ahead: two engines that together may reserve more of the machine than this are not started side by side
MAX_SHARE_TOGETHER = 0.9
