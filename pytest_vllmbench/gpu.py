"""NVIDIA GPUs through NVML; every function answers 'none' when there is no GPU or driver."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    memory_mib: int


def _nvml() -> Any | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # no library, no driver, no device: all mean "no GPU here"
        return None


def list_gpus() -> list[GpuInfo]:
    nvml = _nvml()
    if nvml is None:
        return []
    try:
        found = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            name = nvml.nvmlDeviceGetName(handle)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle).total // (1024 * 1024)
            found.append(GpuInfo(index, name.decode() if isinstance(name, bytes) else name, int(memory)))
        return found
    finally:
        nvml.nvmlShutdown()


def driver_version() -> str | None:
    nvml = _nvml()
    if nvml is None:
        return None
    try:
        version = nvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else version
    finally:
        nvml.nvmlShutdown()


def used_memory_mib() -> dict[int, int]:
    """Memory in use per GPU index right now (whole device, any process)."""
    nvml = _nvml()
    if nvml is None:
        return {}
    try:
        return {
            index: int(nvml.nvmlDeviceGetMemoryInfo(nvml.nvmlDeviceGetHandleByIndex(index)).used // (1024 * 1024))
            for index in range(nvml.nvmlDeviceGetCount())
        }
    finally:
        nvml.nvmlShutdown()


class PeakMemorySampler:
    """Polls whole-device memory in a thread while a cell runs; peak_mib is None without a GPU."""

    def __init__(self, interval_s: float = 0.1) -> None:
        import threading

        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.peak_mib: int | None = None

    def _sample(self, nvml: Any) -> None:
        handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
        while True:
            used = sum(nvml.nvmlDeviceGetMemoryInfo(h).used for h in handles) // (1024 * 1024)
            self.peak_mib = max(self.peak_mib or 0, int(used))
            if self._stop.wait(self._interval_s):
                return

    def __enter__(self) -> PeakMemorySampler:
        import threading

        nvml = _nvml()
        if nvml is not None:
            self._nvml = nvml
            self._thread = threading.Thread(target=self._sample, args=(nvml,), daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._nvml.nvmlShutdown()
