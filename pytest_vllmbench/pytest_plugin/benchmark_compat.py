"""pytest-benchmark's session object, which it does not document: every use of it is here, nowhere else.

Supported: pytest-benchmark >= 5.1, < 6 (pyproject pins the range). What is used: `config._benchmarksession`
and its `disabled`, `save`, `autosave`, `json`, `benchmarks` (fixtures with `extra_info`, `has_error`,
`as_dict`), `storage.path`, `storage.save` (which returns nothing: `watch_saves` learns the file it wrote) and
`get_machine_info()`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_vllmbench.run.interleave import is_round_of


def _session(config: Any) -> Any | None:
    return getattr(config, "_benchmarksession", None)


def measures(config: Any) -> bool:
    """pytest-benchmark is loaded and not switched off (--benchmark-disable, or its xdist switch-off)."""
    session = _session(config)
    return session is not None and not session.disabled


def loaded(config: Any) -> bool:
    return _session(config) is not None


def save_name(config: Any) -> str | None:
    """What --benchmark-save / --benchmark-autosave asked for (None: nothing is saved)."""
    session = _session(config)
    if session is None:
        return None
    name = session.save or session.autosave
    return str(name) if name else None


def storage_root(config: Any) -> Path | None:
    """The folder runs are saved in (--benchmark-storage), None if pytest-benchmark is not there."""
    path = getattr(getattr(_session(config), "storage", None), "path", None)
    return Path(path) if path is not None else None


def measured_benchmarks(config: Any) -> list[Any]:
    """The benchmark fixtures this process measured, in order."""
    return list(getattr(_session(config), "benchmarks", None) or [])


def has_rounds(bench: Any) -> bool:
    """A benchmark fixture with at least one timed round: pytest-benchmark can summarize it (it fails on none)."""
    return bool(getattr(getattr(bench, "stats", None), "data", None))


def drop_unfinished(config: Any, finished: Any) -> int:
    """Forget the benchmark fixtures `finished` refuses (a cell cut short), before pytest-benchmark saves
    or tabulates them; how many were dropped."""
    session = _session(config)
    benchmarks = getattr(session, "benchmarks", None)
    if not benchmarks:
        return 0
    kept = [bench for bench in benchmarks if finished(bench)]
    dropped = len(benchmarks) - len(kept)
    benchmarks[:] = kept
    return dropped


def undo_xdist_switch_off(config: Any) -> None:
    """Measure where pytest-benchmark switched itself off for xdist alone (not for --benchmark-disable or -skip)."""
    session = _session(config)
    if session is not None and session.xdist_warning:
        session.disabled = session.xdist_warning = False


def measure_without_saving(config: Any) -> None:
    """On an xdist worker: measure (pytest-benchmark switches itself off there) but save nothing."""
    session = _session(config)
    if session is not None:
        session.disabled = False
        session.save = session.autosave = session.json = None


def save_run(config: Any, benchmarks: list[Any], machine_extra: dict[str, Any]) -> Path | None:
    """Save `benchmarks` as one run, as pytest-benchmark would at the end of a session, through its own hooks."""
    session, name = _session(config), save_name(config)
    if session is None or name is None:
        return None
    hook = config.hook
    machine_info = session.get_machine_info()
    machine_info.setdefault("vllmbench", {}).update(machine_extra)
    commit_info = hook.pytest_benchmark_generate_commit_info(config=config)
    hook.pytest_benchmark_update_commit_info(config=config, commit_info=commit_info)
    output_json = hook.pytest_benchmark_generate_json(
        config=config, benchmarks=benchmarks, include_data=False, machine_info=machine_info, commit_info=commit_info
    )
    hook.pytest_benchmark_update_json(config=config, benchmarks=benchmarks, output_json=output_json)
    session.storage.save(output_json, session.save or session.autosave)
    return storage_root(config)


def watch_saves(config: Any, on_saved: Callable[[Path], None]) -> bool:
    """Call `on_saved` with the file each save of pytest-benchmark's file storage writes (its own end-of-session
    save, `save_run`'s): the one file under the storage that was not there before the save. False if there is no
    file storage to watch."""
    storage = getattr(_session(config), "storage", None)
    root, save = storage_root(config), getattr(storage, "save", None)
    if storage is None or root is None or save is None:
        return False

    def run_files() -> set[Path]:
        return set(root.rglob("*.json")) if root.is_dir() else set()

    def save_and_report(output_json: Any, name: Any) -> None:
        before = run_files()
        try:
            save(output_json, name)
        except BaseException:  # pytest-benchmark writes in place: an interrupted save leaves a cut file
            for cut in run_files() - before:
                cut.unlink(missing_ok=True)
            raise
        written = run_files() - before
        if len(written) == 1:
            on_saved(written.pop())

    storage.save = save_and_report
    return True


def fold_interleaved_rounds(benchmarks: list[dict[str, Any]]) -> list[str]:
    """--interleave runs one test per round of a cell; each test's figures count the cell's rounds so far. In the JSON
    about to be saved, a cell's entries become one, named by the cell as without --interleave: the one that counts
    every round, with every round's time in its stats (pytest-benchmark's own Stats). Called once per output: a
    folded cell, named by the cell, is no round test and is left as it is. Returns a warning for each cell whose rounds did not all count in its figures
    (its rounds ran in different processes)."""
    from pytest_benchmark import stats as benchmark_stats

    stats_type: Any = benchmark_stats.Stats  # untyped
    warnings = []
    by_cell: dict[str, list[dict[str, Any]]] = {}
    for bench in benchmarks:
        info = bench.get("extra_info") or {}
        if "vllmbench_schema" in info and is_round_of(str(bench.get("param")), str(info.get("cell"))):
            by_cell.setdefault(str(info["cell"]), []).append(bench)
    folded_away: set[int] = set()
    for cell, entries in by_cell.items():
        kept = max(entries, key=lambda bench: len(bench["extra_info"].get("rounds") or ()))
        stats = stats_type()
        for bench in entries:
            for duration in _round_times(bench.get("stats") or {}):
                stats.update(duration)
        kept["stats"] = {**kept.get("stats", {}), **stats.as_dict()}
        if "data" in kept["stats"]:
            kept["stats"]["data"] = list(stats.data)
        for key in ("name", "fullname"):
            if isinstance(kept.get(key), str) and kept[key].endswith("]"):
                kept[key] = kept[key][: kept[key].rindex("[")] + f"[{cell}]"
        kept["param"] = cell
        folded_away.update(id(bench) for bench in entries if bench is not kept)
        if (len(kept["extra_info"].get("rounds") or ()) or 1) < len(entries):  # one round saves no list
            warnings.append(f"{cell}: {len(entries)} rounds ran, but its figures count fewer (rounds on other workers)")
    benchmarks[:] = [bench for bench in benchmarks if id(bench) not in folded_away]
    return warnings


def _round_times(stats: dict[str, Any]) -> list[float]:
    """A saved entry's round times: its data when saved with it, else its one round's (an interleaved test's)."""
    data = stats.get("data")
    if data:
        return [float(value) for value in data]
    return [float(stats["mean"])] * int(stats.get("rounds") or 0)
