"""Read saved pytest-benchmark runs (`.benchmarks/<machine-id>/NNNN_name.json`) into cells."""

from __future__ import annotations

import json
import math
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


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def describe_machine(machine_info: dict[str, Any]) -> str:
    extra, cpu_info = _table(machine_info, "vllmbench"), _table(machine_info, "cpu")
    gpus = [str(name) for name in extra.get("gpus") or [] if name]
    if gpus:
        counts: dict[str, int] = {}
        for name in gpus:
            counts[name] = counts.get(name, 0) + 1
        return ", ".join(f"{n} x {name}" for name, n in counts.items())
    cpu = extra.get("cpu_name") or cpu_info.get("brand_raw") or machine_info.get("processor", "?")
    cores = cpu_info.get("count")
    return f"{cpu} ({cores} cores, no GPU)" if cores else f"{cpu} (no GPU)"


class RunFileError(ValueError):
    """A saved run that cannot be read or does not have pytest-benchmark's shape; the message says why."""


def finite_only(cell: dict[str, Any]) -> dict[str, Any]:
    """NaN and infinite figures become None: they show as missing and never enter a score."""
    return {
        key: None if isinstance(value, float) and not math.isfinite(value) else value for key, value in cell.items()
    }


def _checked_cell(cell: Any, where: str) -> dict[str, Any]:
    if not isinstance(cell, dict):
        raise RunFileError(f"{where} is not an object")
    for key in ("cell", "model", "mode"):
        if not isinstance(cell.get(key), str):
            raise RunFileError(f"{where} has no text {key!r}")
    for key in ("dataset", "engine_args", "engine"):
        if not isinstance(cell.get(key) or {}, dict):
            raise RunFileError(f"{where}: {key!r} is not an object")
    for key, value in cell.items():
        if (
            key.endswith(("_per_s", "_ms_mean", "_ms_p50", "_ms_p90", "_ms_p99", "_hours", "_s", "_mib", "_pct"))
            and value is not None
            and (isinstance(value, bool) or not isinstance(value, int | float))
        ):
            raise RunFileError(f"{where}: {key!r} is not a number ({value!r})")
    return finite_only(cell)


def read_run(path: Path, root: Path) -> SavedRun | None:
    """None for a pytest-benchmark run holding no vllmbench cell; RunFileError for unreadable or wrong-shaped files."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RunFileError(f"cannot read it: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise RunFileError(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise RunFileError("not a pytest-benchmark run (no 'benchmarks' list)")
    cells = []
    for number, bench in enumerate(data["benchmarks"], start=1):
        extra = bench.get("extra_info") if isinstance(bench, dict) else None
        if not isinstance(extra, dict) or "vllmbench_schema" not in extra:
            continue
        stats = bench.get("stats") if isinstance(bench.get("stats"), dict) else {}
        cells.append({**_checked_cell(extra, f"benchmark {number}"), "benchmark_mean_s": stats.get("mean")})
    own = data.get("vllmbench") or {}
    unrun = own.get("unrun", []) if isinstance(own, dict) else None
    if not isinstance(unrun, list):
        raise RunFileError("'vllmbench.unrun' is not a list")
    cells += [_checked_cell(cell, f"unrun cell {number}") for number, cell in enumerate(unrun, start=1)]
    if not cells:
        return None
    machine_info = _table(data, "machine_info")
    relative = path.relative_to(root)
    return SavedRun(
        path=relative,
        machine_id=relative.parts[0] if len(relative.parts) > 1 else "",
        datetime=str(data.get("datetime", "")),
        machine=describe_machine(machine_info),
        cells=cells,
    )


def scan_runs(root: Path) -> tuple[list[SavedRun], list[str]]:
    """Every vllmbench run under root, oldest first, and one warning per file skipped (naming it and why)."""
    if not root.is_dir():
        return [], []
    runs, skipped = [], []
    for path in sorted(root.glob("*/*.json")):
        try:
            run = read_run(path, root)
        except RunFileError as exc:
            skipped.append(f"{path}: skipped: {exc}")
            continue
        if run is not None:
            runs.append(run)
    return sorted(runs, key=lambda run: (run.datetime, str(run.path))), skipped


def load_runs(root: Path) -> list[SavedRun]:
    """Every vllmbench run under root, oldest first (unreadable files left out: see scan_runs)."""
    return scan_runs(root)[0]


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
