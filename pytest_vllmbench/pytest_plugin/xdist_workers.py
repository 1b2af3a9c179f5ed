"""pytest-xdist: one GPU set per worker, cells grouped per engine, and one merged saved run.

pytest-benchmark switches itself off under xdist and saves nothing. Here workers measure anyway and
write each finished benchmark to a partial file (atomically, so a crashed worker loses only the cell
it was running); the controller merges every partial file into ONE run in pytest-benchmark's schema.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xdist
from xdist.scheduler import LoadScopeScheduling

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.common.files import write_text_atomic
from pytest_vllmbench.measure.cell_record import CellResult
from pytest_vllmbench.pytest_plugin import benchmark_compat

PARTIAL_KEY = "vllmbench_partial_dir"


@dataclass(frozen=True)
class _ConfigHolder:
    """xdist's role helpers take a request or session; before the session exists, this carries the config."""

    config: Any


class ScopeScheduling(LoadScopeScheduling):  # type: ignore[misc]  # xdist.scheduler is untyped
    """xdist's loadgroup, each test's group named by `scope_of(nodeid)` instead of by a suffix on its node id: with
    pytest 9.2's structured node ids the suffix xdist 3.8 writes is lost, and loadgroup silently spreads a group's
    tests over the workers (pytest-xdist#1386). A test `scope_of` does not group is its own scope."""

    def __init__(self, config: Any, log: Any, scope_of: Callable[[str], str]) -> None:
        super().__init__(config, log)
        self._scope_of = scope_of

    def _split_scope(self, nodeid: str) -> str:
        return self._scope_of(nodeid)


def test_id(nodeid: str) -> str | None:
    """'mistral-7b-offline' of 'benchmarks/test_batch.py::test_batch[mistral-7b-offline]'; None unparametrized."""
    if not nodeid.endswith("]") or "[" not in nodeid:
        return None
    return nodeid[nodeid.rindex("[") + 1 : -1]


# Roles come from the config xdist hands each worker, never from PYTEST_XDIST_WORKER: a pytest session started
# inside an xdist worker (pytester, a subprocess) inherits that variable but is no worker of anyone.


def is_worker(config: Any) -> bool:
    return bool(xdist.is_xdist_worker(_ConfigHolder(config)))


def worker_input(config: Any) -> dict[str, Any]:
    """What the xdist controller handed this worker (empty outside a worker)."""
    return dict(getattr(config, "workerinput", {}))


def is_controller(config: Any) -> bool:
    return bool(xdist.is_xdist_controller(_ConfigHolder(config)))


def measure_despite_inherited_variables(config: Any) -> None:
    """pytest-benchmark takes PYTEST_XDIST_WORKER for xdist and switches itself off, also in a session that only
    inherited it (a session started inside a worker): one that is neither worker nor controller measures."""
    if os.environ.get("PYTEST_XDIST_WORKER") and not is_worker(config) and not is_controller(config):
        benchmark_compat.undo_xdist_switch_off(config)


def config_worker_id(config: Any) -> str | None:
    return xdist.get_xdist_worker_id(_ConfigHolder(config)) if is_worker(config) else None


def worker_count(config: Any) -> int:
    """How many workers this session's controller runs (1 outside a worker)."""
    return int(worker_input(config).get("workercount", 1)) if is_worker(config) else 1


def gpus_for_worker(worker: str, per_worker: int, available: int) -> list[int]:
    """gw0 -> the first `per_worker` GPUs, gw1 -> the next ones; never two workers on one card."""
    number = int(worker.removeprefix("gw"))
    first = number * per_worker
    if first + per_worker > available:
        raise UsageError(
            f"worker {worker} needs GPUs {first}..{first + per_worker - 1} but this machine has {available}: "
            f"use at most -n {available // per_worker} with --gpus-per-worker={per_worker}"
        )
    return list(range(first, first + per_worker))


def new_partial_dir(storage_root: Path) -> Path:
    path = storage_root / f".partial-{uuid.uuid4().hex[:12]}"
    path.mkdir(parents=True)
    return path


def write_partial(partial_dir: Path, worker: str, index: int, kind: str, payload: dict[str, Any]) -> None:
    write_text_atomic(partial_dir / f"{worker}-{index:04d}-{kind}.json", json.dumps(payload, default=str))


def read_partials(partial_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(benchmarks, unrun cells) written by every worker, crashed ones included."""
    benchmarks: list[dict[str, Any]] = []
    unrun: list[dict[str, Any]] = []
    for path in sorted(partial_dir.glob("*.json")):
        payload = json.loads(path.read_text(encoding="utf-8"))
        (benchmarks if path.stem.endswith("-benchmark") else unrun).append(payload)
    return benchmarks, unrun


def remove_partials(partial_dir: Path) -> None:
    shutil.rmtree(partial_dir, ignore_errors=True)


class SavedBenchmark:
    """A worker's benchmark as the controller sees it: what pytest-benchmark's JSON writer asks of one."""

    has_error = False

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def as_dict(self, include_data: bool = False, **_: Any) -> dict[str, Any]:
        data = dict(self._data)
        if not include_data:
            data.get("stats", {}).pop("data", None)
        return data

    @property
    def extra_info(self) -> dict[str, Any]:
        extra: dict[str, Any] = self._data.get("extra_info", {})
        return extra

    @property
    def param(self) -> str | None:
        """The test's parametrize id, as pytest-benchmark saved it (an --interleave round test's names its round)."""
        param = self._data.get("param")
        return None if param is None else str(param)


class XdistController:
    """Registered on the controller of an xdist run: hands out the partial dir, merges and saves the run."""

    def __init__(self, config: Any, partial_dir: Path, unrun: list[CellResult]) -> None:
        self.config = config
        self.partial_dir = partial_dir
        self.unrun = unrun  # the session's list: merged unrun cells land in the saved JSON through it
        self.merged: list[SavedBenchmark] = []

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[PARTIAL_KEY] = str(self.partial_dir)

    def merge_and_save(self) -> Path | None:
        benchmarks, unrun = read_partials(self.partial_dir)
        remove_partials(self.partial_dir)
        self.merged = [SavedBenchmark(data) for data in benchmarks]
        self.unrun.extend(CellResult.given(entry) for entry in unrun)
        if not self.merged:
            return None
        return benchmark_compat.save_run(self.config, self.merged, {"xdist_workers": worker_gpus(benchmarks)})


def worker_gpus(benchmarks: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Which GPUs each worker's cells ran on, for machine_info."""
    used: dict[str, list[str]] = {}
    for data in benchmarks:
        extra = data.get("extra_info", {})
        used.setdefault(extra.get("xdist_worker", "?"), extra.get("gpus") or [])
    return used


class XdistWorker:
    """Registered on each worker: measure despite pytest-benchmark's xdist switch-off, hand results over."""

    def __init__(
        self, config: Any, partial_dir: Path, worker: str, unrun: list[CellResult], whole: Callable[[Any], bool]
    ) -> None:
        self.config = config
        self.partial_dir = partial_dir
        self.worker = worker
        self.unrun = unrun
        self.whole = whole  # a fixture worth handing over: the session end's test, applied here at each teardown
        self._written = 0
        self._unrun_written = 0
        benchmark_compat.measure_without_saving(config)  # the controller saves

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.when != "teardown":
            return
        benchmarks = benchmark_compat.measured_benchmarks(self.config)
        for fixture in benchmarks[self._written :]:
            if not fixture.has_error and self.whole(fixture):
                fixture.extra_info["xdist_worker"] = self.worker
                data = fixture.as_dict(include_data=False)
                write_partial(self.partial_dir, self.worker, self._written, "benchmark", data)
            self._written += 1
        for entry in self.unrun[self._unrun_written :]:
            write_partial(self.partial_dir, self.worker, 1000 + self._unrun_written, "unrun", entry.extra_info())
            self._unrun_written += 1
