"""NVIDIA GPUs through NVML; every function answers 'none' when there is no GPU or driver."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
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
            memory = nvml.nvmlDeviceGetMemoryInfo(handle).total // (1024 * 1024)
            found.append(GpuInfo(index, _text(nvml.nvmlDeviceGetName(handle)), int(memory)))
        return found
    finally:
        nvml.nvmlShutdown()


def driver_version() -> str | None:
    nvml = _nvml()
    if nvml is None:
        return None
    try:
        return _text(nvml.nvmlSystemGetDriverVersion())
    finally:
        nvml.nvmlShutdown()


def visible_indices() -> list[int] | None:
    """NVML indices named by CUDA_VISIBLE_DEVICES (integers only), or None for 'all of them'."""
    import os

    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None or not value.strip():
        return None
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:  # UUIDs or MIG names: fall back to every device
        return None


def first_visible(count: int | None) -> list[int] | None:
    """The first `count` visible GPUs, where a cell's engine runs; None (count None): every one of them."""
    if count is None:
        return None
    visible = visible_indices()
    return (visible if visible is not None else list(range(count)))[:count]


class GpuSampler:
    """Samples the given GPUs in a thread while a cell runs: memory used (whole device, any process,
    so servers in other processes count), utilisation and power. Figures are None without a GPU."""

    def __init__(
        self, indices: list[int] | None = None, interval_s: float = 0.1, clock: Callable[[], float] = time.time
    ) -> None:
        import threading

        self._indices = indices
        self._interval_s = interval_s
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._memory: list[int] = []
        self._busy: list[tuple[float, float, float | None]] = []  # (epoch s, utilisation %, power W or None)
        self.names: list[str] = []
        self._handles: list[Any] = []

    def _sample(self, nvml: Any, handles: list[Any]) -> None:
        while True:
            at = self._clock()
            self._memory.append(sum(nvml.nvmlDeviceGetMemoryInfo(h).used for h in handles) // (1024 * 1024))
            util = sum(nvml.nvmlDeviceGetUtilizationRates(h).gpu for h in handles) / len(handles)
            power: float | None = None
            try:
                power = sum(nvml.nvmlDeviceGetPowerUsage(h) for h in handles) / 1000.0
            except Exception:  # not every board reports power
                pass
            self._busy.append((at, util, power))  # one sample, whole: its time, busy share and power together
            if self._stop.wait(self._interval_s):
                return

    def __enter__(self) -> GpuSampler:
        import threading

        nvml = _nvml()
        if nvml is None:
            return self
        indices = self._indices if self._indices is not None else list(range(nvml.nvmlDeviceGetCount()))
        if not indices:
            nvml.nvmlShutdown()
            return self
        handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in indices]
        self.names = [_text(nvml.nvmlDeviceGetName(h)) for h in handles]
        self._nvml = nvml
        self._handles = handles
        self._thread = threading.Thread(target=self._sample, args=(nvml, handles), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._nvml.nvmlShutdown()

    def energy_mj(self) -> int | None:
        """The cell's GPUs' total-energy counters summed (millijoules since the driver loaded), or None without
        a GPU or where a board has no counter (NVML answers NotSupported before Volta)."""
        if not self._handles:
            return None
        try:
            return sum(int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(h)) for h in self._handles)
        except Exception:  # NVMLError_NotSupported, or a library too old to have the call
            return None

    def figures(self, spans: Sequence[tuple[float, float]] = ()) -> dict[str, Any]:
        """Peak memory over the whole run; busy share and power over `spans` (epoch s) when given and sampled,
        else over the whole run too."""

        def mean(values: list[float]) -> float | None:
            return round(sum(values) / len(values), 1) if values else None

        samples = [sample for sample in self._busy if any(start <= sample[0] <= end for start, end in spans)]
        samples = samples or self._busy  # no span, or none long enough to hold a sample
        util = [busy for _, busy, _ in samples]
        power = [watts for _, _, watts in samples if watts is not None]
        return {
            "peak_vram_mib": max(self._memory) if self._memory else None,
            "gpu_util_mean_pct": mean(util),
            "gpu_util_max_pct": max(util) if util else None,
            "gpu_power_mean_w": mean(power),
            "gpu_power_max_w": round(max(power), 1) if power else None,
            "gpus": self.names,
        }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value
