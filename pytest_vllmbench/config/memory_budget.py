"""A GPU memory budget per cell (`--gpu-memory=16GiB`): would the cell fit on a smaller card?

vLLM sizes everything it takes on a GPU (weights, activations, CUDA graphs, KV cache) from one figure,
`gpu_memory_utilization`: it reserves ceil(total memory x utilization) on each of the engine's GPUs and fails
to start when the weights and activations leave no room for the KV cache. So the budget becomes
utilization = budget / the GPU's total memory. (`kv_cache_memory_bytes` is no substitute: it fixes the KV cache
alone and makes vLLM ignore gpu_memory_utilization, so the weights would never be held to the budget.)
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.config.modes import mode_spec

UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)\s*", re.IGNORECASE)
STEP = 10_000  # utilization is floored to 1/STEP, so the reservation never exceeds the budget


def parse_size(text: str) -> int:
    """'16GiB', '24GB', '16384MiB', '15.5 GiB' -> bytes. A bare number is refused: GB or GiB is a 7 % difference."""
    match = _SIZE.fullmatch(str(text))
    if match is None:
        raise UsageError(f"--gpu-memory expects a size with a unit such as 16GiB, 24GB or 16384MiB, got {text!r}")
    size = int(float(match[1]) * UNITS[match[2].lower()])
    if size <= 0:
        raise UsageError(f"--gpu-memory must be more than 0, got {text!r}")
    return size


def gib(size_bytes: int) -> float:
    return round(size_bytes / 2**30, 2)


def utilization(budget_bytes: int, totals_bytes: Sequence[int]) -> float:
    """vLLM's gpu_memory_utilization for a cell whose engine spans GPUs of these total sizes.

    The budget is per GPU (the card being asked about). vLLM applies one fraction to every GPU of the engine,
    so the largest GPU sets it: no GPU reserves more than the budget.
    """
    if not totals_bytes:
        raise ValueError("a memory budget needs the cell's GPUs")
    if budget_bytes > min(totals_bytes):
        raise ValueError(
            f"a budget of {gib(budget_bytes):g} GiB is more than a GPU of {gib(min(totals_bytes)):g} GiB has"
        )
    fraction = math.floor(budget_bytes / max(totals_bytes) * STEP) / STEP
    if fraction <= 0:
        raise ValueError(f"a budget of {budget_bytes} bytes is too small to reserve anything")
    return fraction


def check_machine(budget_bytes: int | None, gpu_memory_mib: Sequence[int], modes: Sequence[str]) -> None:
    """Usage errors for a budget that cannot apply here: no GPU, a budget above the GPUs, endpoint cells."""
    if budget_bytes is None:
        return
    if not gpu_memory_mib:
        raise UsageError(
            "--gpu-memory caps the GPU memory of a cell, but NVML finds no GPU on this machine; "
            "drop the option (on the CPU, memory is set by gpu_memory_utilization in the registry)"
        )
    if not_ours := [mode for mode in modes if not mode_spec(mode).owns_engine]:
        raise UsageError(
            f"--gpu-memory cannot cap an {not_ours[0]}: its server's owner sets its memory; "
            "use --mode=offline or --mode=server"
        )
    smallest = min(gpu_memory_mib) * 2**20
    if budget_bytes > smallest:
        raise UsageError(
            f"--gpu-memory={gib(budget_bytes):g}GiB is more than this machine's smallest GPU has "
            f"({gib(smallest):g} GiB)"
        )


def label(budget_gib: float, gpu_names: Sequence[str] = ()) -> str:
    """'memory budget 16 GiB only: the speed is the NVIDIA H200's' (per GPU when the cell spans several)."""
    per = f" per GPU x {len(gpu_names)}" if len(gpu_names) > 1 else ""
    text = f"memory budget {budget_gib:g} GiB{per}"
    if not gpu_names:
        return text
    return f"{text} only: the speed is the {' + '.join(dict.fromkeys(gpu_names))}'s"
