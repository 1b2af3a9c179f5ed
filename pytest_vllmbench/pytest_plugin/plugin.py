"""The pytest adapter's wiring: options, the cell matrix, fixtures; the session object (session_plugin.py) holds
the session's state and implements the hooks that act on it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, Literal, NamedTuple

import pytest

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.common.sigterm import SigtermAsInterrupt
from pytest_vllmbench.config import memory_budget
from pytest_vllmbench.config.matrix import Cell, build_matrix
from pytest_vllmbench.config.registry import load_registry
from pytest_vllmbench.config.settings import OPTIONS, Option, Settings, merge_sources, read_tool_table, resolve
from pytest_vllmbench.engines.supervisor import EngineStopError
from pytest_vllmbench.measure import progress
from pytest_vllmbench.measure.cell_record import CellResult
from pytest_vllmbench.measure.gpu import list_gpus
from pytest_vllmbench.measure.quality import project_figures
from pytest_vllmbench.pytest_plugin import hookspec, xdist_workers
from pytest_vllmbench.pytest_plugin.session_plugin import CELL_FIXTURE, CutShortCells, VllmbenchSession
from pytest_vllmbench.run.interleave import interleaved_rounds
from pytest_vllmbench.run.session import BenchSession
from pytest_vllmbench.run.verdict import measure_cell
from pytest_vllmbench.workload.batch import BatchFileError

SESSION_KEY = pytest.StashKey[VllmbenchSession]()


def _ini_type(option: Option) -> Literal["args", "bool", "string"]:
    if option.multi:
        return "args"
    return "bool" if option.flag else "string"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vllmbench", "vLLM batch benchmarks (pytest-vllmbench)")
    for option in OPTIONS:
        kwargs: dict[str, Any] = {"dest": option.ini_name, "default": None, "help": option.help.replace("%", "%%")}
        if option.flag:
            kwargs["action"] = "store_true"
        else:
            kwargs["action"] = "append" if option.multi else "store"
            kwargs["metavar"] = option.metavar
        group.addoption(f"--{option.name}", **kwargs)
        parser.addini(
            option.ini_name,
            f"{option.help} (ini twin of --{option.name})",
            type=_ini_type(option),
            default=None,
        )


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspec)


@pytest.hookimpl(tryfirst=True)  # before xdist builds its session from dist and maxworkerrestart
def pytest_configure(config: pytest.Config) -> None:
    """Settings from the options, ini keys and [tool.vllmbench], checked; then the session object is registered."""
    cli = {option.key: config.getoption(option.ini_name) for option in OPTIONS}
    ini = {option.key: config.getini(option.ini_name) for option in OPTIONS}
    try:
        table = read_tool_table(config.rootpath / "pyproject.toml")
        values = {key: value for key, value in table.items() if not isinstance(value, dict)}
        tables = {key: value for key, value in table.items() if isinstance(value, dict)}
        settings = resolve(merge_sources(cli, values, ini), config.rootpath, tables)
        registry = load_registry()
        build_matrix(
            settings.models, settings.modes, registry, settings.load_points
        )  # named models fail fast; the batch file's later
        configured = bool(table) or any(value not in (None, [], "", False) for value in (*cli.values(), *ini.values()))
        if configured:  # another project's xdist workers keep their GPUs
            settings = _join_xdist(config, settings)
        if settings.gpu_memory is not None:
            memory_budget.check_machine(settings.gpu_memory, [gpu.memory_mib for gpu in list_gpus()], settings.modes)
    except (UsageError, BatchFileError) as exc:
        raise pytest.UsageError(str(exc)) from None
    session = VllmbenchSession(config, settings, BenchSession(settings, registry, config.rootpath), configured)
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session, "vllmbench-session")
    config.pluginmanager.register(CutShortCells(config), "vllmbench-cut-short-cells")
    if configured and xdist_workers.is_controller(config):
        _no_worker_restarts(config)
        if settings.start_ahead:
            raise pytest.UsageError(
                "--start-ahead starts the next engine of one process's session; under pytest-xdist another worker "
                "may run it: drop -n or --start-ahead"
            )
        if settings.interleave and config.getoption("dist") not in GROUPING_DISTS:
            raise pytest.UsageError(
                f"--interleave runs a model's rounds on one worker, which --dist {config.getoption('dist')} does not "
                f"keep: use --dist {' or '.join(GROUPING_DISTS)}"
            )


# the xdist distributions that keep a model's cells on one worker: this plugin's scheduler (load, loadgroup), or
# xdist's own scope by module (the batch test is one module)
GROUPING_DISTS = ("load", "loadgroup", "loadscope", "loadfile")


def _no_worker_restarts(config: pytest.Config) -> None:
    """A restarted worker would load its models again; the controller collects nothing, so project configuration
    decides."""
    if config.getoption("maxworkerrestart", None) is None:
        config.option.maxworkerrestart = "0"


def _join_xdist(config: pytest.Config, settings: Settings) -> Settings:
    """On a worker: its own GPUs (before vLLM is imported) and its share of the machine."""
    worker = xdist_workers.config_worker_id(config)
    if worker is None:
        return settings
    gpus = list_gpus()
    if gpus:
        indices = xdist_workers.gpus_for_worker(worker, settings.gpus_per_worker, len(gpus))
        os.environ["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # CUDA's numbering = NVML's
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, indices))
    return replace(settings, workers=xdist_workers.worker_count(config))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if CELL_FIXTURE in metafunc.fixturenames:
        session = metafunc.config.stash[SESSION_KEY]
        try:
            session.bench.workload  # noqa: B018 - read and validated before any engine starts
            cells = session.bench.cells
        except (UsageError, BatchFileError) as exc:
            session.collection_error = str(exc)
            cells = []
        params = [pytest.param(test.cell_id, id=test.test_id) for test in _cell_tests(cells, session.settings)]
        metafunc.parametrize(CELL_FIXTURE, params, indirect=True, scope="function")


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    vllmbench = config.stash.get(SESSION_KEY, None)
    if vllmbench is not None and vllmbench.settings.interleave and len(functions := _cell_functions(items)) > 1:
        vllmbench.refused = (
            f"--interleave counts each cell's rounds across its tests, so one test function per session may use "
            f"{CELL_FIXTURE}; found {len(functions)}: {', '.join(functions)} (select one with -k or a path)"
        )
        if not xdist_workers.is_worker(config):  # a worker's usage error crashes xdist's controller: its cells fail
            raise pytest.UsageError(vllmbench.refused)


def pytest_collection_finish(session: pytest.Session) -> None:
    """The cells this session runs, as selected (-k, -m) and in order: --start-ahead starts the next one's engine."""
    vllmbench = session.config.stash.get(SESSION_KEY, None)
    if vllmbench is not None:
        params = (getattr(getattr(item, "callspec", None), "params", {}) for item in session.items)
        vllmbench.bench.run_order = [str(given[CELL_FIXTURE]) for given in params if CELL_FIXTURE in given]


def _cell_functions(items: list[pytest.Item]) -> list[str]:
    """The test functions (node ids without the parameters) that use the cell fixture, in collection order."""
    found = (item.nodeid.split("[", 1)[0] for item in items if CELL_FIXTURE in getattr(item, "fixturenames", ()))
    return list(dict.fromkeys(found))


class CellTest(NamedTuple):
    cell_id: str
    test_id: str  # the cell id, what pytest-benchmark saves as the param; under --interleave, the cell's round
    group: str  # the tests one xdist worker runs, in order: an engine's cells; under --interleave, a model's


def _cell_tests(cells: list[Cell], settings: Settings) -> list[CellTest]:
    if not settings.interleave:
        return [CellTest(cell.id, cell.id, f"{cell.model.alias}-{cell.mode}") for cell in cells]
    return [
        CellTest(turn.cell.id, turn.id, turn.cell.model.alias) for turn in interleaved_rounds(cells, settings.rounds)
    ]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under `-n N` (dist load or loadgroup), each engine's cells run on one worker, in order: the engine is
    loaded once and, under --interleave, a model's rounds alternate on one machine."""
    session = config.stash.get(SESSION_KEY, None)
    if session is None or not session.configured or config.getoption("dist") not in ("load", "loadgroup"):
        return None
    try:
        groups = {test.test_id: test.group for test in _cell_tests(session.bench.cells, session.settings)}
    except (UsageError, BatchFileError):
        return None  # the workers report it as they collect
    return xdist_workers.ScopeScheduling(
        config, log, lambda nodeid: groups.get(xdist_workers.test_id(nodeid) or "", nodeid)
    )


class CellRun:
    """What a benchmark test gets: its cell, and `run(benchmark)` to measure it (it returns the cell's typed
    result, a CellRecord: `result.n_failed`)."""

    def __init__(self, cell: Cell, session: BenchSession, config: pytest.Config) -> None:
        self.cell = cell
        self._session = session
        self._config = config

    def run(self, benchmark: Any) -> CellResult:
        settings = self._session.settings

        def timed(fn: Any) -> None:
            # warm-up rounds are run by the session, once per engine (a sweep's server is warmed once); under
            # --interleave each test is one round, and the saved run folds a cell's rounds into one entry
            rounds = 1 if settings.interleave else settings.rounds
            benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0)

        def quality_hook(cell_id: str, requests: Any, records: Any, gold: Any) -> Any:
            return project_figures(
                self._config.hook.pytest_vllmbench_quality(
                    cell_id=cell_id, requests=requests, records=records, gold=gold
                )
            )

        verdict = measure_cell(self._session, self.cell, timed, quality_hook, _terminal_progress(self._config))
        if verdict.outcome is not None:
            # the one place a cell's result becomes JSON; in place: pytest-benchmark keeps this dict
            benchmark.extra_info.update(verdict.outcome.result.extra_info())
        if verdict.skipped is not None:
            pytest.skip(verdict.skipped)
        if verdict.failed is not None:
            pytest.fail(verdict.failed, pytrace=False)
        assert verdict.outcome is not None
        return verdict.outcome.result


def _terminal_progress(config: pytest.Config) -> progress.ProgressFactory | None:
    """Progress bars drawn on the real terminal while pytest captures the test's output; none on xdist workers
    (their output is not shown) or without a terminal reporter."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or xdist_workers.is_worker(config):
        return None
    capman = config.pluginmanager.get_plugin("capturemanager")

    def write(text: str) -> None:
        if capman is None:
            reporter.write(text, flush=True)
            return
        with capman.global_and_fixture_disabled():
            reporter.write(text, flush=True)

    # the width pytest measured at start: while output is captured the terminal cannot be asked
    return progress.to_terminal(write, tty=bool(reporter.isatty()), width=config.get_terminal_writer().fullwidth)


@pytest.fixture(scope="session")
def vllmbench_session(request: pytest.FixtureRequest) -> Iterator[BenchSession]:
    session = request.config.stash[SESSION_KEY].bench
    with SigtermAsInterrupt():
        yield session
        stop_error = None
        try:
            session.close()
        except EngineStopError as exc:
            stop_error = session.scrub(str(exc))
        if stop_error is not None:
            pytest.fail(f"the last engine did not stop: {stop_error}", pytrace=False)


@pytest.fixture
def vllmbench_cell(request: pytest.FixtureRequest, vllmbench_session: BenchSession) -> CellRun:
    if (refused := request.config.stash[SESSION_KEY].refused) is not None:
        pytest.fail(refused, pytrace=False)
    cell = {cell.id: cell for cell in vllmbench_session.cells}[request.param]
    return CellRun(cell, vllmbench_session, request.config)
