"""The pytest adapter: options, the cell matrix, fixtures and pytest-benchmark hooks."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import pytest

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.config import loads
from pytest_vllmbench.config import memory_budget as budget
from pytest_vllmbench.config.matrix import Cell, build_matrix
from pytest_vllmbench.config.registry import load_registry
from pytest_vllmbench.config.settings import OPTIONS, Option, Settings, merge_sources, read_tool_table, resolve
from pytest_vllmbench.engines.supervisor import EngineStopError
from pytest_vllmbench.measure import machine, progress
from pytest_vllmbench.measure.gpu import list_gpus
from pytest_vllmbench.pytest_plugin import benchmark_compat, hookspec
from pytest_vllmbench.pytest_plugin import xdist_workers as distributed
from pytest_vllmbench.results import gate, report, summary
from pytest_vllmbench.results.report import ReportRefused
from pytest_vllmbench.results.report_price import ReportPrice
from pytest_vllmbench.results.scoring import score_cells
from pytest_vllmbench.results.storage import SavedRun, describe_machine, find_baseline, finite_only, scan_runs
from pytest_vllmbench.run import trace
from pytest_vllmbench.run.session import BenchSession
from pytest_vllmbench.run.verdict import measure_cell
from pytest_vllmbench.workload.batch import BatchFileError

SETTINGS_KEY = pytest.StashKey[Settings]()
SESSION_KEY = pytest.StashKey[BenchSession]()
BASELINE_KEY = pytest.StashKey[SavedRun | None]()
COLLECTION_ERROR_KEY = pytest.StashKey[str]()
CONTROLLER_KEY = pytest.StashKey[distributed.XdistController]()
SIGTERM_KEY = pytest.StashKey["_SigtermAsInterrupt"]()
IN_USE_KEY = pytest.StashKey[bool]()  # this session collects vLLM benchmark cells: the plugin may act
CONFIGURED_KEY = pytest.StashKey[bool]()  # vllmbench options, ini keys or [tool.vllmbench] are set here
STARTED_KEY = pytest.StashKey[float]()
GATES_KEY = pytest.StashKey[tuple[str | None, list[gate.Check]]]()
REPORT_KEY = pytest.StashKey[Path]()
CELL_FIXTURE = "vllmbench_cell"


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
    cli = {option.key: config.getoption(option.ini_name) for option in OPTIONS}
    ini = {option.key: config.getini(option.ini_name) for option in OPTIONS}
    try:
        table = read_tool_table(config.rootpath / "pyproject.toml")
        values = {key: value for key, value in table.items() if not isinstance(value, dict)}
        tables = {key: value for key, value in table.items() if isinstance(value, dict)}
        raw = merge_sources(cli, values, ini)
        settings = resolve(raw, config.rootpath, tables)
        registry = load_registry()
        build_matrix(
            settings.models, settings.modes, registry, settings.load_points
        )  # named models fail fast; the batch file's later
        configured = bool(table) or any(value not in (None, [], "", False) for value in (*cli.values(), *ini.values()))
        if configured:  # another project's xdist workers keep their GPUs
            settings = _join_xdist(config, settings)
        if settings.gpu_memory is not None:
            budget.check_machine(settings.gpu_memory, [gpu.memory_mib for gpu in list_gpus()], settings.modes)
    except (UsageError, BatchFileError) as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SESSION_KEY] = BenchSession(settings, registry, config.rootpath)
    config.pluginmanager.register(_InterruptedCells(config), "vllmbench-interrupted-cells")
    config.stash[SETTINGS_KEY] = settings
    config.stash[CONFIGURED_KEY] = configured
    if configured and distributed.is_controller(config):
        _keep_engines_on_one_worker(config)
    config.stash[STARTED_KEY] = time.time()


def _keep_engines_on_one_worker(config: pytest.Config) -> None:
    """xdist settings for a vllmbench run; the controller collects nothing, so project configuration decides."""
    if config.getoption("dist") == "load":
        config.option.dist = "loadgroup"  # keep each engine's cells on one worker
    if config.getoption("maxworkerrestart", None) is None:
        # a restarted worker would load its models again, and loadgroup hangs after a restart
        config.option.maxworkerrestart = "0"


def _join_xdist(config: pytest.Config, settings: Settings) -> Settings:
    """On a worker: its own GPUs (before vLLM is imported) and its share of the machine."""
    worker = distributed.config_worker_id(config)
    if worker is None:
        return settings
    gpus = list_gpus()
    if gpus:
        indices = distributed.gpus_for_worker(worker, settings.gpus_per_worker, len(gpus))
        os.environ["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # CUDA's numbering = NVML's
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, indices))
    return replace(settings, workers=distributed.worker_count(config))


def _register_xdist_roles(config: pytest.Config, session: BenchSession) -> None:
    if config.stash[CONFIGURED_KEY]:  # a plain pytest-benchmark project sees pytest-benchmark as it is
        distributed.measure_despite_inherited_variables(config)
    worker = distributed.config_worker_id(config)
    handed = distributed.worker_input(config)
    if worker is not None and distributed.PARTIAL_KEY in handed:
        partial_dir = Path(handed[distributed.PARTIAL_KEY])
        config.pluginmanager.register(distributed.XdistWorker(config, partial_dir, worker, session.unrun))
    elif (
        distributed.is_controller(config)
        and config.stash[CONFIGURED_KEY]
        and (root := _storage_root(config)) is not None
    ):
        _check_paths_before_engines(config, on_worker=False)
        try:
            partial_dir = distributed.new_partial_dir(root)
        except OSError as exc:
            raise UsageError(f"benchmark storage {_storage_root(config)}: {exc.strerror or exc}") from None
        controller = distributed.XdistController(config, partial_dir, session.unrun)
        config.pluginmanager.register(controller)
        config.stash[CONTROLLER_KEY] = controller
        config.stash[IN_USE_KEY] = True
        config.stash[SIGTERM_KEY] = _SigtermAsInterrupt().__enter__()  # xdist then stops its workers cleanly


def _refuse_gates_without_measurements(config: pytest.Config, settings: Settings) -> None:
    if distributed.is_worker(config):
        return  # workers measure despite pytest-benchmark's xdist switch-off; the controller gates the merged run
    measured = benchmark_compat.measures(config) or (
        benchmark_compat.loaded(config) and distributed.is_controller(config)
    )
    if settings.gate_rules and not measured:
        raise UsageError(
            "--vllmbench-gate needs pytest-benchmark to measure, but it is disabled here (--benchmark-disable): "
            "a gate would pass with nothing measured"
        )


class _SigtermAsInterrupt:
    """While cells run, SIGTERM behaves like Ctrl-C, so fixtures stop the servers they started before pytest exits."""

    def __init__(self) -> None:
        self.installed = False

    def __enter__(self) -> _SigtermAsInterrupt:
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
            self.installed = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.installed and signal.getsignal(signal.SIGTERM) is _raise_keyboard_interrupt:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if CELL_FIXTURE in metafunc.fixturenames:
        session = metafunc.config.stash[SESSION_KEY]
        try:
            session.workload  # noqa: B018 - read and validated before any engine starts
            cells = session.cells
        except (UsageError, BatchFileError) as exc:
            metafunc.config.stash[COLLECTION_ERROR_KEY] = str(exc)
            cells = []
        # the plain id is what pytest-benchmark saves as the param; loadgroup keeps an engine's cells on one worker
        params = [
            pytest.param(cell.id, id=cell.id, marks=pytest.mark.xdist_group(name=f"{cell.model.alias}-{cell.mode}"))
            for cell in cells
        ]
        metafunc.parametrize(CELL_FIXTURE, params, indirect=True, scope="function")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    error = config.stash.get(COLLECTION_ERROR_KEY, None)
    if error is not None:
        raise pytest.UsageError(error)
    if any(CELL_FIXTURE in getattr(item, "fixturenames", ()) for item in items):
        config.stash[IN_USE_KEY] = True
        if distributed.is_worker(config) and distributed.PARTIAL_KEY not in distributed.worker_input(config):
            raise pytest.UsageError(
                "vLLM benchmark cells under xdist need the project to configure pytest-vllmbench (a [tool.vllmbench] "
                "table in pyproject.toml, a vllmbench_* ini key or a vllmbench option), so the controller keeps "
                "each engine's cells on one worker and saves their results"
            )
        _check_paths_before_engines(config, on_worker=distributed.is_worker(config))
        if not distributed.is_worker(config):
            try:
                _prepare_gates(config, config.stash[SETTINGS_KEY])
            except UsageError as exc:
                raise pytest.UsageError(str(exc)) from None


def _in_use(config: pytest.Config) -> bool:
    return config.stash.get(IN_USE_KEY, False)


def _saving(config: pytest.Config) -> bool:
    return benchmark_compat.save_name(config) is not None


def _check_paths_before_engines(config: pytest.Config, on_worker: bool) -> None:
    """Every path the session will write, tried before any engine starts: a usage error now, not after the run."""
    settings = config.stash[SETTINGS_KEY]
    try:
        if settings.write_outputs is not None:
            try:
                settings.write_outputs.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageError(f"--write-outputs {settings.write_outputs}: {exc.strerror or exc}") from None
            if not os.access(settings.write_outputs, os.W_OK):
                raise UsageError(f"--write-outputs {settings.write_outputs}: the folder is not writable")
        if settings.trace_dir is not None:
            trace.check_trace_folder(settings.trace_dir)
        if on_worker or not _saving(config):
            return
        root = _storage_root(config)
        if root is not None:
            existing = next(parent for parent in (root, *root.parents) if parent.exists())
            if not existing.is_dir() or not os.access(existing, os.W_OK):
                raise UsageError(f"benchmark storage {root}: {existing} is not a writable folder")
        if settings.report is not None:
            report.check_report_file(settings.report)
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None


class CellRun:
    """What a benchmark test gets: its cell, and `run(benchmark)` to measure it."""

    def __init__(self, cell: Cell, session: BenchSession, config: pytest.Config) -> None:
        self.cell = cell
        self._session = session
        self._config = config

    def run(self, benchmark: Any) -> dict[str, Any]:
        settings = self._session.settings

        def timed(fn: Any) -> None:
            # warm-up rounds are run by the session, once per engine (a sweep's server is warmed once)
            benchmark.pedantic(fn, rounds=settings.rounds, iterations=1, warmup_rounds=0)

        def quality_hook(cell_id: str, requests: Any, records: Any, gold: Any) -> Any:
            return self._config.hook.pytest_vllmbench_quality(
                cell_id=cell_id, requests=requests, records=records, gold=gold
            )

        verdict = measure_cell(self._session, self.cell, timed, quality_hook, _terminal_progress(self._config))
        if verdict.outcome is not None:
            benchmark.extra_info.update(verdict.outcome.extra_info)  # in place: pytest-benchmark keeps this dict
        if verdict.skipped is not None:
            pytest.skip(verdict.skipped)
        if verdict.failed is not None:
            pytest.fail(verdict.failed, pytrace=False)
        assert verdict.outcome is not None
        return verdict.outcome.extra_info


def _terminal_progress(config: pytest.Config) -> progress.ProgressFactory | None:
    """Progress bars drawn on the real terminal while pytest captures the test's output; none on xdist workers
    (their output is not shown) or without a terminal reporter."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or distributed.is_worker(config):
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
    session = request.config.stash[SESSION_KEY]
    with _SigtermAsInterrupt():
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
    cell = {cell.id: cell for cell in vllmbench_session.cells}[request.param]
    return CellRun(cell, vllmbench_session, request.config)


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    if _in_use(config):
        machine_info["vllmbench"] = machine.machine_info()


def _score(config: pytest.Config, cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    settings = config.stash[SETTINGS_KEY]
    cells = [finite_only(cell) for cell in cells]  # NaN/inf figures count as missing, never as a score
    custom = config.hook.pytest_vllmbench_score(cells=cells, weights=settings.weights)
    return custom if custom is not None else score_cells(cells, settings.weights, settings.flexibility)


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_json(config: pytest.Config, benchmarks: list[Any], output_json: dict[str, Any]) -> None:
    """Score the run's cells against each other; called once per output, so it only ever overwrites."""
    if SETTINGS_KEY not in config.stash:
        return
    saved = [bench for bench in output_json.get("benchmarks", []) if "vllmbench_schema" in bench.get("extra_info", {})]
    unrun = _unrun(config)
    if not saved and not unrun:
        return
    scores = _score(config, [bench["extra_info"] for bench in saved])
    for bench, scored in zip(saved, scores, strict=True):
        bench["extra_info"]["score"] = scored["score"]
    output_json["vllmbench"] = {
        "weights": config.stash[SETTINGS_KEY].weights,
        "scores": {bench["extra_info"]["cell"]: scored for bench, scored in zip(saved, scores, strict=True)},
        "unrun": unrun,  # does not fit / failed / skipped, for the report
    }


def _unrun(config: pytest.Config) -> list[dict[str, Any]]:
    session = config.stash.get(SESSION_KEY, None)
    return list(session.unrun) if session is not None else []


def _storage_root(config: pytest.Config) -> Path | None:
    return benchmark_compat.storage_root(config)


@pytest.hookimpl(tryfirst=True)  # before xdist starts its workers
def pytest_sessionstart(session: pytest.Session) -> None:
    """What needs pytest-benchmark's session, whose pytest_configure may run after ours: the gates' checks and
    baseline (picked before this run adds itself to the storage), and the xdist roles."""
    config = session.config
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None:
        return
    try:
        _register_xdist_roles(config, config.stash[SESSION_KEY])
        if CONTROLLER_KEY in config.stash:  # the controller collects nothing: a configured project is in use
            _prepare_gates(config, settings)
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None


def _prepare_gates(config: pytest.Config, settings: Settings) -> None:
    """In a session that runs cells: refuse gates that would compare nothing, and pick the baseline before this
    run adds itself to the storage."""
    _refuse_gates_without_measurements(config, settings)
    root = _storage_root(config)
    if settings.gate_rules and root is not None and not distributed.is_worker(config):
        config.stash[BASELINE_KEY] = _find_baseline(config, settings, root)


def _find_baseline(config: pytest.Config, settings: Settings, root: Path) -> SavedRun | None:
    runs, skipped = scan_runs(root)
    for message in skipped:
        config.get_terminal_writer().line(f"vllmbench: warning: {message}", yellow=True)
    baseline = find_baseline(runs, settings.baseline, describe_machine(_machine_info()))
    if baseline is None and settings.baseline != "latest":
        raise UsageError(
            f"--vllmbench-baseline={settings.baseline}: no saved run of that number or name for this "
            f"machine under {root}"
        )
    return baseline


def _machine_info() -> dict[str, Any]:
    """Just what describe_machine reads, to match the baseline to this machine before anything is saved."""
    return {"vllmbench": machine.machine_info(), "cpu": {"count": os.cpu_count()}}


def _current_cells(config: pytest.Config) -> dict[str, Any]:
    """This run's cells by id: measured ones (scored as they are saved) and the ones that could not run."""
    controller = config.stash.get(CONTROLLER_KEY, None)
    cells = {}
    for fixture in benchmark_compat.measured_benchmarks(config) + (controller.merged if controller else []):
        if not fixture.has_error and "vllmbench_schema" in fixture.extra_info:
            cells[fixture.extra_info["cell"]] = dict(fixture.extra_info)
    if cells:
        for cell, scored in zip(cells.values(), _score(config, list(cells.values())), strict=True):
            cell["score"] = scored["score"]
    return gate.by_cell([*cells.values(), *config.stash[SESSION_KEY].unrun])


def _run_gates(session: pytest.Session, settings: Settings) -> None:
    config = session.config
    writer = config.get_terminal_writer()
    baseline = config.stash.get(BASELINE_KEY, None)
    config.stash[GATES_KEY] = (None if baseline is None else str(baseline.path), [])
    if baseline is None:
        writer.line(
            f"vllmbench gate: no baseline run ({settings.baseline!r}) for this machine in the storage; "
            "nothing was compared",
            yellow=True,
        )
        return
    checks = gate.check(_current_cells(config), gate.by_cell(baseline.cells), settings.gate_rules)
    config.stash[GATES_KEY] = (str(baseline.path), checks)
    writer.line(f"\nvllmbench gate against {baseline.path}:")
    writer.line(gate.table(checks))
    if gate.exit_code(checks) != gate.EXIT_OK:
        writer.line(f"vllmbench gate failed: {gate.summary(checks)}", red=True, bold=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _write_report(session: pytest.Session, settings: Settings, root: Path) -> None:
    """The run is saved already: a report that cannot be written fails the session but loses no measurement."""
    config = session.config
    writer = config.get_terminal_writer()
    assert settings.report is not None

    def warn(message: str) -> None:
        writer.line(f"vllmbench: warning: {message}", yellow=True)

    try:
        price = (
            None if settings.gpu_hourly_cost is None else ReportPrice(settings.gpu_hourly_cost, settings.cost_currency)
        )
        path = report.write_report(
            root,
            settings.report,
            settings.weights,
            settings.flexibility,
            warn=warn,
            scorer=lambda cells: _score(config, cells),
            price=price,
        )
    except (ReportRefused, OSError) as exc:
        writer.line(f"vllmbench: the run is saved, but the report was not regenerated: {exc}", red=True, bold=True)
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return
    config.stash[REPORT_KEY] = path
    writer.line(f"vllmbench: regenerated {path}")


class _InterruptedCells:
    """Ctrl-C or SIGTERM inside a cell leaves pytest-benchmark a fixture with no rounds or no vllmbench figures:
    it is dropped before pytest-benchmark's own sessionfinish would save it (or fail on its empty stats)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> Iterator[None]:
        if exitstatus == pytest.ExitCode.INTERRUPTED:
            benchmark_compat.drop_unfinished(self.config, _finished)
        yield


def _finished(bench: Any) -> bool:
    """A cell whose timed rounds all ran and whose figures were recorded (a plain benchmark: its rounds ran)."""
    rounds = getattr(getattr(bench, "stats", None), "data", None)
    is_cell = CELL_FIXTURE in (getattr(bench, "params", None) or {})
    return bool(rounds) and (not is_cell or "vllmbench_schema" in (getattr(bench, "extra_info", None) or {}))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After pytest-benchmark saved the run: gate it, then regenerate the Markdown report from the whole storage."""
    config = session.config
    controller = config.stash.get(CONTROLLER_KEY, None)
    merged_into = controller.merge_and_save() if controller is not None else None
    if controller is not None and merged_into is not None:
        config.get_terminal_writer().line(
            f"vllmbench: merged {len(controller.merged)} cell(s) from the xdist workers into one run in {merged_into}"
        )
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None or distributed.is_worker(config):
        return
    if settings.gate_rules and _in_use(config):
        _run_gates(session, settings)
    measured = bool(benchmark_compat.measured_benchmarks(config))
    saving_here = _in_use(config) and _saving(config) and benchmark_compat.measures(config)
    answered = [cell for cell in _unrun(config) if not str(cell.get("status", "")).startswith("failed")]
    interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
    if saving_here and controller is None and not measured and answered and not interrupted:
        # pytest-benchmark saves nothing when no benchmark ran, but "does not fit" and "skipped" are this run's
        # answer; a session whose cells only failed saves nothing (it would become the gates' latest baseline)
        measured = benchmark_compat.save_run(config, [], {}) is not None
    saved = merged_into is not None or (saving_here and measured)
    root = _storage_root(config)
    if settings.report is None or not saved or root is None:
        return
    _write_report(session, settings, root)


def pytest_unconfigure(config: pytest.Config) -> None:
    handler = config.stash.get(SIGTERM_KEY, None)
    if handler is not None:
        handler.__exit__(None, None, None)


def _saved_run(config: pytest.Config) -> Path | None:
    """The run file this session wrote: the newest under the storage, if written since the session started."""
    root = _storage_root(config)
    if root is None or not Path(root).is_dir():
        return None
    files = [(path.stat().st_mtime, path) for path in Path(root).glob("*/*.json")]
    newest = max(files, default=None)
    return newest[1] if newest and newest[0] >= config.stash.get(STARTED_KEY, float("inf")) else None


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's wall-time table
def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """The session's cells in one table, the gate verdicts, and where the run and the report went."""
    if SETTINGS_KEY not in config.stash or not _in_use(config) or distributed.is_worker(config):
        return
    cells = list(_current_cells(config).values())  # measured cells and the session's unrun ones
    gates = config.stash.get(GATES_KEY, None)
    notes = loads.knee_lines(cells) + (summary.gate_lines(*gates) if gates else [])
    block = summary.summary_block(cells, notes, _saved_run(config), config.stash.get(REPORT_KEY, None))
    if block:
        terminalreporter.write_sep("=", "vllmbench summary")
        terminalreporter.write_line(block)
