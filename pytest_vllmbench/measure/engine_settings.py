"""The scheduler settings an engine really ran with, read from vLLM's own config (vLLM's defaults differ between
`LLM` and `vllm serve`, and with the GPU: compare cells knowing both)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

# saved key -> (config section, field) in vLLM's VllmConfig
FIELDS = {
    "max_num_seqs": ("scheduler_config", "max_num_seqs"),
    "max_num_batched_tokens": ("scheduler_config", "max_num_batched_tokens"),
    "enable_chunked_prefill": ("scheduler_config", "enable_chunked_prefill"),
    "enable_prefix_caching": ("cache_config", "enable_prefix_caching"),
    "enforce_eager": ("model_config", "enforce_eager"),
    "cudagraph_mode": ("compilation_config", "cudagraph_mode"),
    "max_model_len": ("model_config", "max_model_len"),
    "gpu_memory_utilization": ("cache_config", "gpu_memory_utilization"),
    "stream_interval": ("scheduler_config", "stream_interval"),  # tokens a server sends a request at a time
}
PLAIN = (bool, int, float, str)
# vLLM's CUDAGraphMode values, as its JSON config writes them (the live config has the enum and its name)
CUDAGRAPH_MODES = {
    "0": "NONE",
    "1": "PIECEWISE",
    "2": "FULL",
    "[2, 0]": "FULL_DECODE_ONLY",
    "[2, 1]": "FULL_AND_PIECEWISE",
}


def _plain(value: Any, key: str = "") -> Any:
    if key == "cudagraph_mode" and not isinstance(value, str | None):
        text = str(list(value)) if isinstance(value, list | tuple) else str(value)
        return CUDAGRAPH_MODES.get(text, getattr(value, "name", text))
    if value is None or isinstance(value, PLAIN):
        return value
    name = getattr(value, "name", None)  # other enums
    return name if isinstance(name, str) else str(value)


def _settings(section: Callable[[str], Any], field_of: Callable[[Any, str], Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, (where, name) in FIELDS.items():
        part = section(where)
        out[key] = None if part is None else _plain(field_of(part, name), key)
    return out


def from_config_object(config: Any) -> dict[str, Any]:
    """From a live VllmConfig (the offline engine's)."""
    return _settings(lambda where: getattr(config, where, None), lambda part, name: getattr(part, name, None))


def from_config_json(config: Mapping[str, Any]) -> dict[str, Any]:
    """From the JSON a vLLM server's `/server_info?config_format=json` returns under `vllm_config`."""

    def section(where: str) -> Any:
        part = config.get(where)
        return part if isinstance(part, Mapping) else None

    return _settings(section, lambda part, name: part.get(name))


def differing(cells: list[Mapping[str, Any]]) -> list[str]:
    """The settings keys whose values differ among the cells that saved settings."""
    saved = [cell["engine_settings"] for cell in cells if isinstance(cell.get("engine_settings"), Mapping)]
    if len(saved) < 2:
        return []
    keys = sorted({key for one in saved for key in one if key != "source"})
    # a run saved before a key was read has no value for it: unknown there, not different
    return [key for key in keys if len({repr(one[key]) for one in saved if key in one}) > 1]
