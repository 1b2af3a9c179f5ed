"""One benchmark session: settings, the workload (read once) and the engine slot (one live engine)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.common.files import sha256_of
from pytest_vllmbench.common.redaction import redact_args, redact_text, secret_values, strip_paths
from pytest_vllmbench.config.loads import LoadPoint
from pytest_vllmbench.config.matrix import Cell, build_matrix
from pytest_vllmbench.config.memory_budget import gib
from pytest_vllmbench.config.registry import Registry
from pytest_vllmbench.config.settings import Settings
from pytest_vllmbench.engines.base import SamplingOverrides
from pytest_vllmbench.engines.dummy_weights import CellSkip, DoesNotFit, does_not_fit, over_budget
from pytest_vllmbench.engines.vllm_cli import vllm_platform
from pytest_vllmbench.measure.cell_record import SCHEMA, checked_figures
from pytest_vllmbench.measure.gpu import cell_gpu_indices, list_gpus
from pytest_vllmbench.measure.metrics import RequestRecord
from pytest_vllmbench.measure.progress import ProgressFactory
from pytest_vllmbench.measure.quality import score_quality
from pytest_vllmbench.measure.roofline import load_bandwidths
from pytest_vllmbench.run.batch_output import write_batch_output
from pytest_vllmbench.run.cell_run import CellOutcome, Timed, run_cell
from pytest_vllmbench.run.engine_slot import EngineSlot
from pytest_vllmbench.run.engine_start import engine_args, model_source, start_engine, weights_info
from pytest_vllmbench.run.parity import vllm_bench_requests_per_s
from pytest_vllmbench.run.trace import trace_path, write_trace
from pytest_vllmbench.workload.batch import BatchRequest, read_batch, select
from pytest_vllmbench.workload.gold import load_gold
from pytest_vllmbench.workload.random_spec import is_random, parse_random_spec, random_requests

QualityHook = Callable[[str, list[BatchRequest], list[RequestRecord], Any], "dict[str, Any] | None"]


GPU_ONLY_QUANTIZATIONS = ("bitsandbytes",)  # vLLM's CPU build has no kernels for these


def cannot_run_here(cell: Cell, args: dict[str, Any], platform: str) -> str | None:
    """Why the cell's engine cannot start on this machine, known before it is tried (None: it may)."""
    quantization = str(args.get("quantization") or "")
    if cell.mode != "endpoint" and platform == "cpu" and quantization in GPU_ONLY_QUANTIZATIONS:
        return (
            f"{cell.id}: {cell.model.alias} is {quantization}-quantized, which needs a GPU, and this vLLM is "
            "the CPU build; measure it on a GPU machine (--load-format=dummy sizes it there without its weights)"
        )
    return None


def _gpu_count(args: dict[str, Any]) -> int:
    return int(args.get("tensor_parallel_size", 1)) * int(args.get("pipeline_parallel_size", 1))


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


def cell_gpu_memory_mib(mode: str, args: dict[str, Any]) -> list[int]:
    """Memory of the GPUs the cell's engine runs on (tp x pp of the visible ones), not of the whole host."""
    indices = cell_gpu_indices(mode, args)
    return [gpu.memory_mib for gpu in list_gpus() if indices is None or gpu.index in indices]


class BenchSession:
    def __init__(self, settings: Settings, registry: Registry, rootdir: Path) -> None:
        self.settings = settings
        self.registry = registry
        self.rootdir = rootdir
        self.engine_slot = EngineSlot(lambda cell: start_engine(cell, settings, registry))
        self.sampling = SamplingOverrides(settings.max_tokens, settings.ignore_eos)
        self.unrun: list[dict[str, Any]] = []
        self.warmed: set[tuple[str, str]] = set()  # engines warmed already: a sweep warms its server once

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
    def workload(self) -> list[BatchRequest]:
        """Read and validated once; raises BatchFileError naming every bad line."""
        if self.settings.random_dataset:
            requests = random_requests(self.settings.random_dataset, self.settings.seed)[: self.settings.limit]
        else:
            requests = read_batch(self.settings.dataset, limit=self.settings.limit)
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

    def run(
        self, cell: Cell, timed: Timed, quality_hook: QualityHook | None = None, progress: ProgressFactory | None = None
    ) -> CellOutcome:
        """Measure the cell, then score its outputs in memory and write them only if asked to."""
        requests = self.workload
        args = engine_args(cell, self.settings, self.registry)
        if self.budget_gib is not None and (status := over_budget(cell.model, self.budget_gib, _gpu_count(args))):
            raise DoesNotFit(status)  # the weights alone are over the budget: no engine need start
        if reason := cannot_run_here(cell, args, vllm_platform()):
            raise CellSkip(reason)  # before any engine import or model-hub lookup
        engine = self.engine_slot.get(cell)
        context = {
            "engine_args": redact_args(args),  # saved; the engine got `args`
            "dataset": self.dataset_info,
            "model_source": model_source_label(cell.model.source, self.rootdir),
            **weights_info(cell, self.settings, self.registry),
        }
        if self.budget_gib is not None:
            context["gpu_memory_budget_gib"] = self.budget_gib
        gpu_indices = cell_gpu_indices(cell.mode, args)
        outcome = run_cell(
            cell,
            engine,
            requests,
            self.sampling,
            context,
            self.settings.project_to,
            timed,
            self.settings.slo_ms,
            gpu_indices=gpu_indices,
            bandwidths=self.bandwidths,
            pricing=(self.settings.gpu_hourly_cost, self.settings.cost_currency),
            progress=progress,
            warmup=0 if cell.engine_key in self.warmed else self.warmup_rounds(gpu_indices),
            load=cell.load or LoadPoint(self.settings.concurrency, self.settings.request_rate),
            trace=self.settings.trace_dir is not None,
        )
        self.warmed.add(cell.engine_key)
        if self.settings.trace_dir is not None:
            path = trace_path(self.settings.trace_dir, cell.id)
            try:
                write_trace(path, cell.id, outcome.trace)
                outcome.extra_info["trace_file"] = path.name
            except OSError as exc:  # like --write-outputs: the figures are kept, the cell fails saying why
                outcome.extra_info["outputs_error"] = f"--trace-dir {path}: {exc.strerror or exc}"
        quality = quality_hook(cell.id, requests, outcome.records, self.gold) if quality_hook else None
        outcome.extra_info |= quality if quality is not None else score_quality(requests, outcome.records, self.gold)
        if self.settings.write_outputs:
            path = self.settings.write_outputs / f"{cell.id}.jsonl"
            try:
                write_batch_output(path, requests, outcome.records, cell.requested)
            except OSError as exc:  # the measurement is kept; the cell carries the error and fails
                outcome.extra_info["outputs_error"] = f"{path}: {exc.strerror or exc}"
        if self.settings.vllm_bench_parity and self.settings.random_dataset and cell.mode == "offline":
            outcome.extra_info |= self._parity(cell, args, outcome.extra_info["requests_per_s"])
        return outcome

    def warmup_rounds(self, gpu_indices: list[int] | None) -> int:
        """--warmup, or by default one round where the cell runs on a GPU (first-run kernel compilation)."""
        if self.settings.warmup is not None:
            return self.settings.warmup
        return 1 if gpu_indices and list_gpus() else 0

    def _parity(self, cell: Cell, args: dict[str, Any], ours: float) -> dict[str, Any]:
        """vLLM's own `bench throughput` on the same engine args and workload, after ours is closed."""
        self.engine_slot.close()  # one GPU: the reference run needs the memory
        input_len, output_len, count = parse_random_spec(self.settings.random_dataset or "")
        try:
            theirs = vllm_bench_requests_per_s(
                model_source(cell, self.settings, self.registry),
                args,
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
        return {"vllm_bench_requests_per_s": round(theirs, 4), "vllm_bench_ratio": round(ours / theirs, 4)}

    @property
    def budget_gib(self) -> float | None:
        return None if self.settings.gpu_memory is None else gib(self.settings.gpu_memory)

    def fit_status(self, cell: Cell, start_error: str) -> str | None:
        """'does not fit ...' when an engine failed to start for lack of memory, else None."""
        args = engine_args(cell, self.settings, self.registry)
        memory = cell_gpu_memory_mib(cell.mode, args)  # the cell's own GPUs, not the whole host
        return does_not_fit(
            start_error,
            cell.model,
            memory,
            float(args.get("gpu_memory_utilization", 0.9)),
            self.budget_gib,
            _gpu_count(args),
        )

    def record_unrun(self, cell: Cell, status: str) -> None:
        """A cell that could not be measured ('does not fit: ...', 'failed: ...', 'skipped: ...')."""
        self.unrun.append(
            checked_figures(
                {
                    "vllmbench_schema": SCHEMA,
                    "cell": cell.id,
                    "model": cell.model.alias,
                    "model_source": model_source_label(cell.model.source, self.rootdir),
                    "params_b": cell.model.params_b,
                    "dtype": cell.model.dtype,
                    "mode": cell.mode,
                    "status": strip_paths(self.scrub(status)),
                    "engine_args": redact_args(engine_args(cell, self.settings, self.registry)),
                    "dataset": self.dataset_info,
                    **weights_info(cell, self.settings, self.registry),
                    **({"gpu_memory_budget_gib": self.budget_gib} if self.budget_gib is not None else {}),
                }
            )
        )

    def scrub(self, text: str) -> str:
        """Text from elsewhere (an engine's error, a server's log tail) with this session's secrets hidden."""
        settings = self.settings
        return redact_text(text, secret_values(settings.endpoint, settings.engine_args, settings.api_key))

    def close(self) -> None:
        self.engine_slot.close()
