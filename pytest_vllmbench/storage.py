"""Read saved pytest-benchmark runs (`.benchmarks/<machine-id>/NNNN_name.json`) into cells."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SavedRun:
    path: Path  # relative to the storage root
    machine_id: str
    datetime: str
    machine: str  # CPU or GPU names, as a reader would say it
    cells: list[dict[str, Any]]  # each benchmark's extra_info, plus its pytest-benchmark mean time

    @property
    def name(self) -> str:
        return self.path.stem


def describe_machine(machine_info: dict[str, Any]) -> str:
    extra = machine_info.get("vllmbench", {})
    gpus = extra.get("gpus") or []
    if gpus:
        counts: dict[str, int] = {}
        for name in gpus:
            counts[name] = counts.get(name, 0) + 1
        return ", ".join(f"{n} x {name}" for name, n in counts.items())
    cpu = extra.get("cpu_name") or machine_info.get("cpu", {}).get("brand_raw") or machine_info.get("processor", "?")
    cores = machine_info.get("cpu", {}).get("count")
    return f"{cpu} ({cores} cores, no GPU)" if cores else f"{cpu} (no GPU)"


def read_run(path: Path, root: Path) -> SavedRun | None:
    """None for files that are not pytest-benchmark runs or hold no vllmbench cell."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        return None
    cells = []
    for bench in data["benchmarks"]:
        extra = bench.get("extra_info") or {}
        if "vllmbench_schema" in extra:
            cells.append({**extra, "benchmark_mean_s": (bench.get("stats") or {}).get("mean")})
    cells += [dict(cell) for cell in (data.get("vllmbench") or {}).get("unrun", [])]
    if not cells:
        return None
    machine_info = data.get("machine_info") or {}
    relative = path.relative_to(root)
    return SavedRun(
        path=relative,
        machine_id=relative.parts[0] if len(relative.parts) > 1 else "",
        datetime=data.get("datetime", ""),
        machine=describe_machine(machine_info),
        cells=cells,
    )


def load_runs(root: Path) -> list[SavedRun]:
    """Every vllmbench run under root, oldest first."""
    if not root.is_dir():
        return []
    runs = [run for path in sorted(root.glob("*/*.json")) if (run := read_run(path, root)) is not None]
    return sorted(runs, key=lambda run: (run.datetime, str(run.path)))


def find_baseline(runs: list[SavedRun], spec: str, machine: str) -> SavedRun | None:
    """'latest': the newest run of `machine`; otherwise the run whose file name or number is `spec`."""
    candidates = [run for run in runs if run.machine == machine]
    if spec == "latest":
        return candidates[-1] if candidates else None
    for run in reversed(candidates):
        number, _, name = run.name.partition("_")
        if spec in (run.name, name, number, number.lstrip("0"), str(run.path)):
            return run
    return None
