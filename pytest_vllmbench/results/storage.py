"""Read saved pytest-benchmark runs (`.benchmarks/<machine-id>/NNNN_name.json`) into cells."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_vllmbench.common.cut import one_line
from pytest_vllmbench.common.files import read_plain_text
from pytest_vllmbench.results.saved_run import SavedCell, is_ok

MAX_RUN_BYTES = 256 * 2**20  # a saved run holds figures, never requests: a few MB at most
RUN_NAME = re.compile(r"\d{4,}_.*\.json", re.DOTALL)  # pytest-benchmark's NNNN_name.json


@dataclass(frozen=True)
class SavedRun:
    path: Path  # relative to the storage root
    machine_id: str
    datetime: str
    machine: str  # CPU or GPU names, as a reader would say it
    cells: list[SavedCell]  # each benchmark's extra_info, plus its pytest-benchmark mean time; then unrun cells
    warnings: tuple[str, ...] = ()  # one per field or cell left out (see saved_run.clean_cell)
    boot: str | None = None  # one boot of one machine (measure.machine.boot_id); None in runs saved before it

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def number(self) -> str:
        """The run's number in its storage folder ('0015'); History lists each number's file."""
        return self.name.partition("_")[0]


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def describe_machine(machine_info: dict[str, Any]) -> str:
    """How a reader names the machine, on one line whatever the file says."""
    return one_line(_machine(machine_info))


def _machine(machine_info: dict[str, Any]) -> str:
    extra, cpu_info = _table(machine_info, "vllmbench"), _table(machine_info, "cpu")
    listed = extra.get("gpus")
    gpus = [str(name) for name in listed if name] if isinstance(listed, list) else []
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


def finite_only(cell: Mapping[str, Any]) -> dict[str, Any]:
    """NaN and infinite figures become None: they show as missing and never enter a score."""
    return {
        key: None if isinstance(value, float) and not math.isfinite(value) else value for key, value in cell.items()
    }


def read_run(path: Path, root: Path) -> SavedRun | None:
    """None for a pytest-benchmark run holding no vllmbench cell; RunFileError for unreadable or wrong-shaped files."""
    try:
        data = json.loads(read_plain_text(path, MAX_RUN_BYTES))
    except OSError as exc:
        raise RunFileError(f"cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise RunFileError(f"not UTF-8 text: {exc}") from None
    except ValueError as exc:
        raise RunFileError(f"not JSON: {exc}") from None
    except RecursionError:
        raise RunFileError("not a saved run: JSON nested deeper than Python can read") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise RunFileError("not a pytest-benchmark run (no 'benchmarks' list)")
    cells: list[SavedCell] = []
    warnings: list[str] = []
    raw_cells: list[tuple[Any, str]] = []
    for number, bench in enumerate(data["benchmarks"], start=1):
        extra = bench.get("extra_info") if isinstance(bench, dict) else None
        if not isinstance(extra, dict) or "vllmbench_schema" not in extra:
            continue
        stats = bench.get("stats") if isinstance(bench.get("stats"), dict) else {}
        raw_cells.append(({**extra, "benchmark_mean_s": stats.get("mean")}, f"{path}: benchmark {number}"))
    own = data.get("vllmbench") or {}
    unrun = own.get("unrun", []) if isinstance(own, dict) else None
    if not isinstance(unrun, list):
        warnings.append(f"{path}: field 'vllmbench.unrun' dropped: not a list")
        unrun = []
    raw_cells += [(cell, f"{path}: unrun cell {number}") for number, cell in enumerate(unrun, start=1)]
    for raw, where in raw_cells:
        cell, found = SavedCell.from_saved(raw, where)
        warnings += found
        if cell is not None:
            cells.append(cell)
    if not cells:
        if warnings:
            raise RunFileError("no cell could be read: " + "; ".join(warnings[:3]))
        return None
    machine_info = _table(data, "machine_info")
    relative = path.relative_to(root)
    return SavedRun(
        path=relative,
        machine_id=relative.parts[0] if len(relative.parts) > 1 else "",
        datetime=one_line(str(data.get("datetime", ""))),
        machine=describe_machine(machine_info),
        cells=cells,
        warnings=tuple(warnings),
        boot=_boot(_table(machine_info, "vllmbench").get("boot")),
    )


def _boot(value: Any) -> str | None:
    return value if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{12}", value) else None


def scan_runs(root: Path) -> tuple[list[SavedRun], list[str]]:
    """Every vllmbench run under root, oldest first, and one warning per file skipped (naming it and why)."""
    if not root.is_dir():
        return [], []
    runs, skipped = [], _runs_outside_machine_folders(root)
    for path in sorted(root.glob("*/*.json")):
        if one_line(str(path)) != str(path):  # the name would break the lines it is shown on
            skipped.append(f"{one_line(str(path))}: skipped: its name holds a control character or line break")
            continue
        try:
            run = read_run(path, root)
        except RunFileError as exc:
            skipped.append(f"{path}: skipped: {exc}")
            continue
        if run is not None:
            runs.append(run)
            skipped += run.warnings
    return sorted(runs, key=lambda run: (run.datetime, str(run.path))), skipped


def _runs_outside_machine_folders(root: Path) -> list[str]:
    """One warning per file at the root named like a run: the scanner reads only STORAGE/MACHINE_ID/NNNN_name.json."""
    return [
        f"{one_line(str(path))}: skipped: not in a machine folder; pytest-benchmark saves runs as "
        "STORAGE/MACHINE_ID/NNNN_name.json: move it into its machine's folder"
        for path in sorted(root.glob("*.json"))
        if RUN_NAME.fullmatch(path.name) and not path.is_dir()
    ]


def load_runs(root: Path) -> list[SavedRun]:
    """Every vllmbench run under root, oldest first (unreadable files left out: see scan_runs)."""
    return scan_runs(root)[0]


def find_baseline(runs: list[SavedRun], spec: str, machine: str) -> SavedRun | None:
    """'latest': the newest run of `machine` in which some cell ran (not every request failed); otherwise the run
    whose file name or number is `spec`."""
    candidates = [run for run in runs if run.machine == machine]
    if spec == "latest":
        measured = [run for run in candidates if any(_ran(cell) for cell in run.cells)]
        return measured[-1] if measured else None
    for run in reversed(candidates):
        number, _, name = run.name.partition("_")
        if spec in (run.name, name, number, number.lstrip("0"), str(run.path)):
            return run
    return None


def _ran(cell: SavedCell) -> bool:
    """A measured cell with at least one request that did not fail."""
    if not is_ok(cell):
        return False
    requests, failed = cell.get("n_requests"), cell.get("n_failed")
    if isinstance(requests, int) and isinstance(failed, int) and requests > 0:
        return failed < requests
    return True
