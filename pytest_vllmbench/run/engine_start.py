"""Start the engine a cell needs, with the registry's, the platform's and the user's engine args."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.common.notices import notice
from pytest_vllmbench.common.redaction import redact_url, strip_paths
from pytest_vllmbench.config import memory_budget as budget
from pytest_vllmbench.config.matrix import Cell
from pytest_vllmbench.config.registry import Registry
from pytest_vllmbench.config.settings import Settings
from pytest_vllmbench.engines import dummy_weights as sizing
from pytest_vllmbench.engines import embedded_model as embedded
from pytest_vllmbench.engines.base import Engine
from pytest_vllmbench.engines.hub_access import weights_unavailable
from pytest_vllmbench.engines.openai_client import ClientConfig
from pytest_vllmbench.engines.vllm_cli import vllm_platform
from pytest_vllmbench.measure.gpu import cell_gpu_indices, list_gpus


def requested_args(cell: Cell, settings: Settings, registry: Registry) -> dict[str, Any]:
    """The registry's, the platform's and the user's engine args, before dummy-weight sizing adjusts them."""
    if cell.mode == "endpoint":
        return {}  # the endpoint's owner chose them
    platform = vllm_platform()
    args = registry.engine_args_for(cell.model, platform)
    if platform == "cpu" and settings.workers > 1 and "gpu_memory_utilization" in args:
        # on the CPU this is the share of RAM for the KV cache: engines of parallel workers split it
        args["gpu_memory_utilization"] = round(args["gpu_memory_utilization"] / settings.workers, 4)
    if settings.load_format:
        args["load_format"] = settings.load_format
    args = {**args, **settings.engine_args}
    if cell.mode == "server" and cell.api_servers is not None:
        args["api_server_count"] = cell.api_servers
    if cell.mode != "ray":  # --engine-arg ray_replicas=... and the like shape ray cells only
        args = {key: value for key, value in args.items() if not key.startswith("ray_")}
    if settings.gpu_memory is not None:
        args["gpu_memory_utilization"] = budget_utilization(settings.gpu_memory, args)
    return args


def budget_utilization(budget_bytes: int, args: dict[str, Any]) -> float:
    """--gpu-memory as vLLM's gpu_memory_utilization on the GPUs this engine will use (NVML's totals)."""
    totals = {gpu.index: gpu.memory_mib * 2**20 for gpu in list_gpus()}
    indices = cell_gpu_indices("offline", args) or []
    try:
        return budget.utilization(budget_bytes, [totals[i] for i in indices if i in totals])
    except ValueError as exc:
        raise UsageError(f"--gpu-memory: {exc}") from None


def model_source(cell: Cell, settings: Settings, registry: Registry) -> str:
    """What vLLM loads. Dummy weights however they were asked for (--load-format, --engine-arg, the registry)
    use the model's own config + tokenizer, else the shipped ones; CellSkip when neither is at hand."""
    args = requested_args(cell, settings, registry)
    if sizing.is_dummy(args):
        return sizing.dummy_model(cell.model, args).path
    if cell.model.embedded:
        return str(embedded.ensure_prepared(cell.model.alias))
    return cell.model.source


def engine_args(cell: Cell, settings: Settings, registry: Registry) -> dict[str, Any]:
    """The engine args vLLM gets (and the cell records)."""
    args = requested_args(cell, settings, registry)
    if not sizing.is_dummy(args):
        return args
    try:
        return sizing.vllm_args(args, sizing.dummy_model(cell.model, args))
    except sizing.CellSkip:
        return args  # the cell is skipped; record what was asked


def weights_info(cell: Cell, settings: Settings, registry: Registry) -> dict[str, Any]:
    """`weights` (the label every view shows) and `dummy_source` for cells that do not run real weights."""
    args = requested_args(cell, settings, registry)
    label = sizing.weights_label(args)
    if label is None:
        return {}
    try:
        source = sizing.dummy_model(cell.model, args).source
    except sizing.CellSkip:
        source = None
    return {"weights": label, "dummy_source": None if source is None else strip_paths(source)}


def client_config(settings: Settings, base_url: str, served_model: str) -> ClientConfig:
    return ClientConfig(
        base_url=base_url,
        served_model=served_model,
        concurrency=settings.concurrency,
        request_rate=settings.request_rate,
        timeout_s=settings.request_timeout,
        api_key=settings.api_key,
        seed=settings.seed,
    )


def start_engine(cell: Cell, settings: Settings, registry: Registry) -> Engine:
    if cell.mode != "endpoint" and (missing := weights_unavailable(model_source(cell, settings, registry))):
        raise sizing.CellSkip(f"{cell.id}: {missing}")  # before vLLM is imported or asks the hub
    if cell.mode == "offline":
        from pytest_vllmbench.engines.offline import OfflineEngine

        return OfflineEngine(model_source(cell, settings, registry), engine_args(cell, settings, registry))
    if cell.mode == "server":
        from pytest_vllmbench.engines.server import ServerEngine

        return ServerEngine(
            model_source(cell, settings, registry),
            cell.model.alias,
            engine_args(cell, settings, registry),
            client_config(settings, "", cell.model.alias),
            settings.server_timeout,
            progress=notice,
        )
    if cell.mode == "run-batch":
        from pytest_vllmbench.engines.run_batch import RunBatchEngine

        return RunBatchEngine(
            model_source(cell, settings, registry), cell.model.alias, engine_args(cell, settings, registry)
        )
    if cell.mode == "ray":
        from pytest_vllmbench.engines.ray_data import RayDataEngine, ray_available

        if (why := ray_available()) is not None:  # before the model is prepared: nothing is gained by it
            raise sizing.CellSkip(why)
        return RayDataEngine(
            model_source(cell, settings, registry), engine_args(cell, settings, registry), vllm_platform()
        )
    from pytest_vllmbench.engines.endpoint import EndpointEngine, normalize_base_url, plain_http_elsewhere

    assert settings.endpoint is not None  # settings.resolve demands it for this mode
    config = client_config(settings, normalize_base_url(settings.endpoint), cell.requested)
    if config.api_key and plain_http_elsewhere(config.base_url) and not settings.api_key_over_http:
        notice(
            f"the API key in ${settings.api_key_env} is NOT sent to {redact_url(config.base_url)}: plain http to "
            "another machine would expose it; pass --api-key-over-http to send it anyway"
        )
        config = replace(config, api_key=None)
    return EndpointEngine(config)
