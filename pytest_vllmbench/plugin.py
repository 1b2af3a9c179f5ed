"""The pytest adapter: options, the cell matrix, fixtures and pytest-benchmark hooks."""

from __future__ import annotations

import signal
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_vllmbench import machine, report
from pytest_vllmbench.cells import Cell
from pytest_vllmbench.client import EndpointUnreachable
from pytest_vllmbench.engines.base import EngineStartError
from pytest_vllmbench.errors import UsageError
from pytest_vllmbench.registry import load_registry
from pytest_vllmbench.session import BenchSession
from pytest_vllmbench.settings import OPTIONS, Settings, merge_sources, resolve
from pytest_vllmbench.workload import BatchFileError

SETTINGS_KEY = pytest.StashKey[Settings]()
SESSION_KEY = pytest.StashKey[BenchSession]()
CELL_FIXTURE = "vllmbench_cell"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vllmbench", "vLLM batch benchmarks (pytest-vllmbench)")
    for option in OPTIONS:
        kwargs: dict[str, Any] = {"dest": f"vllmbench_{option.key}", "default": None, "help": option.help}
        if option.flag:
            kwargs["action"] = "store_true"
        else:
            kwargs["action"] = "append" if option.multi else "store"
            kwargs["metavar"] = option.metavar
        group.addoption(f"--{option.name}", **kwargs)
        parser.addini(
            f"vllmbench_{option.key}",
            f"{option.help} (ini twin of --{option.name})",
            type="args" if option.multi else ("bool" if option.flag else "string"),
            default=None,
        )


def _tool_table(rootpath: Path) -> dict[str, Any]:
    pyproject = rootpath / "pyproject.toml"
    if not pyproject.is_file():
        return {}
    try:
        table = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}).get("vllmbench", {})
    except tomllib.TOMLDecodeError as exc:
        raise pytest.UsageError(f"{pyproject}: {exc}") from None
    return {key.replace("-", "_"): value for key, value in table.items() if not isinstance(value, dict)}


def pytest_configure(config: pytest.Config) -> None:
    cli = {option.key: config.getoption(f"vllmbench_{option.key}") for option in OPTIONS}
    ini = {option.key: config.getini(f"vllmbench_{option.key}") for option in OPTIONS}
    try:
        raw = merge_sources(cli, _tool_table(config.rootpath), ini)
        settings = resolve(raw, config.rootpath)
        config.stash[SESSION_KEY] = BenchSession(settings, load_registry(), config.rootpath)
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SETTINGS_KEY] = settings
    _stop_cleanly_on_sigterm()


def _stop_cleanly_on_sigterm() -> None:
    """SIGTERM behaves like Ctrl-C, so fixtures stop the servers they started before pytest exits."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if CELL_FIXTURE in metafunc.fixturenames:
        cells = metafunc.config.stash[SESSION_KEY].cells
        metafunc.parametrize(CELL_FIXTURE, cells, ids=[cell.id for cell in cells], indirect=True, scope="function")


class CellRun:
    """What a benchmark test gets: its cell, and `run(benchmark)` to measure it."""

    def __init__(self, cell: Cell, session: BenchSession) -> None:
        self.cell = cell
        self._session = session

    def run(self, benchmark: Any) -> dict[str, Any]:
        settings = self._session.settings

        def timed(fn: Any) -> None:
            benchmark.pedantic(fn, rounds=settings.rounds, iterations=1, warmup_rounds=settings.warmup)

        try:
            outcome = self._session.run(self.cell, timed)
        except BatchFileError as exc:
            pytest.exit(str(exc), returncode=pytest.ExitCode.USAGE_ERROR)
        except EngineStartError as exc:
            pytest.fail(f"{self.cell.id}: engine did not start: {exc}", pytrace=False)
        except EndpointUnreachable as exc:
            pytest.fail(f"{self.cell.id}: {exc}", pytrace=False)
        benchmark.extra_info.update(outcome.extra_info)  # in place: pytest-benchmark keeps this dict
        if outcome.fault:
            pytest.fail(f"{self.cell.id}: {outcome.fault}", pytrace=False)
        return outcome.extra_info


@pytest.fixture(scope="session")
def vllmbench_session(request: pytest.FixtureRequest) -> Iterator[BenchSession]:
    session = request.config.stash[SESSION_KEY]
    yield session
    session.close()


@pytest.fixture
def vllmbench_cell(request: pytest.FixtureRequest, vllmbench_session: BenchSession) -> CellRun:
    return CellRun(request.param, vllmbench_session)


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    machine_info["vllmbench"] = machine.machine_info()


def _storage_root(config: pytest.Config) -> Path | None:
    bench_session = getattr(config, "_benchmarksession", None)
    storage = getattr(bench_session, "storage", None)
    return getattr(storage, "path", None)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After pytest-benchmark saved the run, regenerate the Markdown report from the whole storage."""
    config = session.config
    settings = config.stash.get(SETTINGS_KEY, None)
    bench_session = getattr(config, "_benchmarksession", None)
    saved = (
        bench_session is not None
        and (bench_session.save or bench_session.autosave)
        and not bench_session.disabled
        and bool(getattr(bench_session, "benchmarks", None))
    )
    root = _storage_root(config)
    if settings is None or settings.report is None or not saved or root is None:
        return
    path = report.write_report(root, settings.report)
    config.get_terminal_writer().line(f"vllmbench: regenerated {path}")
