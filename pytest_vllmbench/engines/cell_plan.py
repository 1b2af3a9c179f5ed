"""A cell's plan, made once before its engine starts: the engine args vLLM gets, what it loads, the weights label,
the GPUs it runs on and the memory-budget verdict. Every later question about the cell reads the plan."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.common.redaction import is_secret_name, strip_paths
from pytest_vllmbench.config import memory_budget
from pytest_vllmbench.config.matrix import Cell
from pytest_vllmbench.config.modes import ModeSpec, engine_gpu_count, mode_spec, mode_specs
from pytest_vllmbench.config.registry import ModelSpec, Registry
from pytest_vllmbench.config.settings import Settings
from pytest_vllmbench.engines import dummy_weights, embedded_model
from pytest_vllmbench.engines.base import CellSkip
from pytest_vllmbench.engines.openai_client import ClientConfig
from pytest_vllmbench.engines.vllm_cli import vllm_platform
from pytest_vllmbench.measure.gpu import GpuInfo, first_visible, list_gpus

GPU_ONLY_QUANTIZATIONS = ("bitsandbytes",)  # vLLM's CPU build has no kernels for these
VLLM_DEFAULT_UTILIZATION = 0.9  # vLLM's gpu_memory_utilization when none is given
_UNSET = object()  # an arg the registry and the platform do not give


@dataclass(frozen=True)
class CellPlan:
    cell: Cell
    mode: ModeSpec
    settings: Settings
    platform: str  # "cuda" or "cpu": which vLLM build is installed
    engine_args: dict[str, Any]  # what vLLM gets (and the cell records, redacted); {} for a server not ours
    user_args: dict[str, Any]  # what --engine-arg changed in engine_args (see `changed_by_user`)
    weights: str | None  # the label of weights that are not the real ones (dummy, random 4-bit), else None
    dummy: (
        dummy_weights.DummyModel | CellSkip | None
    )  # where a dummy-weight cell's config and tokenizer come from, or why not
    engine_gpus: int  # one engine's GPUs (tensor x pipeline parallel): what a per-GPU budget or a fit multiplies
    gpu_indices: list[int] | None  # the GPUs the cell runs on (None: every visible one, as for an endpoint)
    gpu_memory_mib: list[int]  # their memory: what "does not fit" is told against
    on_gpu: bool  # NVML sees a GPU here
    budget_gib: float | None  # --gpu-memory per GPU
    over_budget: str | None  # 'does not fit in ...' when the weights alone exceed the budget: no engine need start
    cannot_run_here: str | None  # why the engine cannot start on this machine, known before it is tried

    @cached_property
    def model_source(self) -> str:
        """What vLLM loads: a dummy-weight cell's config + tokenizer folder (CellSkip when there is none), the
        prepared embedded model, or the registry's source."""
        if isinstance(self.dummy, CellSkip):
            raise self.dummy
        if self.dummy is not None:
            return self.dummy.path
        if self.cell.model.embedded:
            return str(embedded_model.ensure_prepared(self.cell.model.alias))
        return self.cell.model.source

    def weights_info(self) -> dict[str, Any]:
        """`weights` (the label every view shows) and `dummy_source` for cells that do not run real weights."""
        if self.weights is None:
            return {}
        source = None if self.dummy is None or isinstance(self.dummy, CellSkip) else strip_paths(self.dummy.source)
        return {"weights": self.weights, "dummy_source": source}

    def fit_status(self, start_error: str) -> str | None:
        """'does not fit ...' when the engine failed to start for lack of memory, else None."""
        return dummy_weights.does_not_fit(
            start_error, self.cell.model, self.gpu_memory_mib, self.memory_share, self.budget_gib, self.engine_gpus
        )

    @property
    def memory_share(self) -> float:
        """The share of each GPU's memory vLLM may reserve (on the CPU build, of RAM for the KV cache)."""
        return memory_share(self.engine_args)

    @property
    def client_processes(self) -> int:
        """The processes sending this cell's requests: --client-processes where a client sends them, else 1."""
        return self.settings.client_processes if self.mode.sweeps else 1

    def client(self, base_url: str, served_model: str) -> ClientConfig:
        """The OpenAI client's settings for this cell's requests."""
        settings = self.settings
        return ClientConfig(
            base_url=base_url,
            served_model=served_model,
            concurrency=settings.concurrency,
            request_rate=settings.request_rate,
            timeout_s=settings.request_timeout,
            api_key=settings.api_key,
            seed=settings.seed,
            processes=self.client_processes,
        )


class DummySources:
    """Each model's dummy-weight config and tokenizer, looked for once per session (the hub is asked once)."""

    def __init__(self) -> None:
        self._found: dict[tuple[str, str], dummy_weights.DummyModel | CellSkip] = {}

    def find(self, model: ModelSpec) -> dummy_weights.DummyModel | CellSkip:
        key = (model.alias, model.source)
        if key not in self._found:
            try:
                self._found[key] = dummy_weights.resolve_dummy(model)
            except CellSkip as exc:
                self._found[key] = exc
        return self._found[key]


def memory_share(engine_args: Mapping[str, Any]) -> float:
    return float(engine_args.get("gpu_memory_utilization", VLLM_DEFAULT_UTILIZATION))


def plan_cell(
    cell: Cell, settings: Settings, registry: Registry, dummies: DummySources, engines_alive: int = 1
) -> CellPlan:
    """`engines_alive`: the engines that live at once beside this cell's (--interleave): each gets an equal share of
    the memory vLLM may reserve, unless the user set it."""
    mode = mode_spec(cell.mode)
    platform = vllm_platform()
    gpus = list_gpus()
    configured = registry.engine_args_for(cell.model, platform) if mode.owns_engine else {}
    requested = requested_args(cell, mode, settings, configured, platform)
    user_set = {"gpu_memory_utilization", "kv_cache_memory_bytes"} & set(settings.engine_args)
    if mode.owns_engine and engines_alive > 1 and not user_set and settings.gpu_memory is None:
        requested["gpu_memory_utilization"] = round(memory_share(requested) / engines_alive, 4)
    engine_gpus = engine_gpu_count(requested)  # dummy-weight sizing below never changes it
    if settings.gpu_memory is not None and mode.owns_engine:
        requested["gpu_memory_utilization"] = budget_utilization(settings.gpu_memory, engine_gpus, gpus)
    dummy: dummy_weights.DummyModel | CellSkip | None = None
    args, weights = requested, None
    if dummy_weights.is_dummy(requested):
        weights = dummy_weights.weights_label(requested)
        dummy = dummies.find(cell.model)
        if isinstance(dummy, dummy_weights.DummyModel):
            try:
                dummy = dummy_weights.for_cell(dummy, cell.model, requested, bool(gpus))
            except CellSkip as exc:
                dummy = exc
        if isinstance(
            dummy, dummy_weights.DummyModel
        ):  # else the cell is skipped when it starts, recording the args asked for
            args = dummy_weights.vllm_args(requested, dummy)
    indices = first_visible(mode.gpu_count(engine_gpus, args))
    budget_gib = None if settings.gpu_memory is None else memory_budget.gib(settings.gpu_memory)
    over = None
    if budget_gib is not None:
        over = dummy_weights.over_budget(cell.model, budget_gib, engine_gpus)
    return CellPlan(
        cell=cell,
        mode=mode,
        settings=settings,
        platform=platform,
        engine_args=args,
        user_args=changed_by_user(settings.engine_args, configured, args),
        weights=weights,
        dummy=dummy,
        engine_gpus=engine_gpus,
        gpu_indices=indices,
        gpu_memory_mib=[gpu.memory_mib for gpu in gpus if indices is None or gpu.index in indices],
        on_gpu=bool(gpus),
        budget_gib=budget_gib,
        over_budget=over,
        cannot_run_here=cannot_run_here(cell, mode, args, platform),
    )


def requested_args(
    cell: Cell, mode: ModeSpec, settings: Settings, configured: Mapping[str, Any], platform: str
) -> dict[str, Any]:
    """The registry's and the platform's engine args (`configured`) and the user's, before --gpu-memory and
    the dummy-weight adjustments."""
    if not mode.owns_engine:
        return {}  # the server's owner chose them
    args = dict(configured)
    if platform == "cpu" and settings.workers > 1 and "gpu_memory_utilization" in args:
        # on the CPU this is the share of RAM for the KV cache: engines of parallel workers split it
        args["gpu_memory_utilization"] = round(args["gpu_memory_utilization"] / settings.workers, 4)
    if settings.load_format:
        args["load_format"] = settings.load_format
    args = {**args, **settings.engine_args}
    if mode.api_servers and cell.api_servers is not None:
        args["api_server_count"] = cell.api_servers
    # --engine-arg ray_replicas=... and the like shape the cells of the mode they are named for only
    foreign = tuple(other.own_args_prefix for other in mode_specs() if other.own_args_prefix and other != mode)
    return {key: value for key, value in args.items() if not key.startswith(foreign)}


def budget_utilization(budget_bytes: int, engine_gpus: int, gpus: list[GpuInfo]) -> float:
    """--gpu-memory as vLLM's gpu_memory_utilization on the GPUs one engine will use (NVML's totals)."""
    totals = {gpu.index: gpu.memory_mib * 2**20 for gpu in gpus}
    indices = first_visible(engine_gpus) or []
    try:
        return memory_budget.utilization(budget_bytes, [totals[i] for i in indices if i in totals])
    except ValueError as exc:
        raise UsageError(f"--gpu-memory: {exc}") from None


def cannot_run_here(cell: Cell, mode: ModeSpec, args: dict[str, Any], platform: str) -> str | None:
    """Why the cell's engine cannot start on this machine, known before it is tried (None: it may)."""
    quantization = str(args.get("quantization") or "")
    if mode.owns_engine and platform == "cpu" and quantization in GPU_ONLY_QUANTIZATIONS:
        return (
            f"{cell.id}: {cell.model.alias} is {quantization}-quantized, which needs a GPU, and this vLLM is "
            "the CPU build; measure it on a GPU machine (--load-format=dummy sizes it there without its weights)"
        )
    return None


def changed_by_user(
    user_set: Mapping[str, Any], configured: Mapping[str, Any], engine_args: Mapping[str, Any]
) -> dict[str, Any]:
    """The engine args --engine-arg changed for this cell: the engine got the user's value, and the registry or the
    platform do not give it anyway. Part of what the cell is, so the report keeps it apart from the same cell as
    configured. Left out: load_format (the dummy-weight mark shows it) and secret-named args (engine_args holds them,
    redacted)."""
    return {
        key: value
        for key, value in user_set.items()
        if key in engine_args
        and engine_args[key] == value
        and configured.get(key, _UNSET) != value
        and key != "load_format"
        and not is_secret_name(key)
    }
