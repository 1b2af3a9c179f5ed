"""The session object: registered with pytest's plugin manager, it holds one session's state and implements the
hooks that act on it; the work at the session's end is session_end.py's, which knows nothing of pytest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.common.sigterm import SigtermAsInterrupt
from pytest_vllmbench.config.settings import Settings
from pytest_vllmbench.measure import machine
from pytest_vllmbench.pytest_plugin import benchmark_compat, xdist_workers
from pytest_vllmbench.pytest_plugin.session_end import (
    ReportNotWritten,
    SessionEnd,
    check_paths,
    has_answer_to_save,
    this_machine,
)
from pytest_vllmbench.results import gate
from pytest_vllmbench.results.saved_run import SavedCell
from pytest_vllmbench.run.session import BenchSession
from pytest_vllmbench.workload.batch import BatchFileError

CELL_FIXTURE = "vllmbench_cell"


class VllmbenchSession:
    """One pytest session's benchmark: its settings, runner, results, and its role under xdist."""

    def __init__(self, config: pytest.Config, settings: Settings, bench: BenchSession, configured: bool) -> None:
        self.config = config
        self.settings = settings
        self.bench = bench
        self.configured = configured  # vllmbench options, ini keys or [tool.vllmbench] are set here
        self.in_use = False  # this session collects vLLM benchmark cells: the plugin may act
        self.collection_error: str | None = None  # a workload or matrix error found while parametrizing
        self.refused: str | None = None  # why this session's cells may not run (told at collection where it can be)
        self.controller: xdist_workers.XdistController | None = None
        self.end = SessionEnd(settings, bench.unrun, self._project_score, self._warn)
        self._sigterm: SigtermAsInterrupt | None = None

    def _project_score(self, cells: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        scored: list[dict[str, Any]] | None = self.config.hook.pytest_vllmbench_score(
            cells=cells, weights=self.settings.weights
        )
        return scored

    def _warn(self, message: str) -> None:
        self.config.get_terminal_writer().line(f"vllmbench: warning: {message}", yellow=True)

    @property
    def _collect_only(self) -> bool:
        return bool(self.config.getoption("collectonly", False))

    def _saving(self) -> bool:
        return benchmark_compat.save_name(self.config) is not None

    def _check_paths(self, on_worker: bool) -> None:
        root = benchmark_compat.storage_root(self.config)
        check_paths(self.settings, root, saving=not on_worker and self._saving(), cell_ids=self._cells_writing_files())

    def _cells_writing_files(self) -> list[str]:
        """The ids of the cells whose outputs or traces this session writes. Only then is the matrix built this early
        (it reads the batch file); a batch file or model that cannot give one is reported where it always is."""
        if self.settings.write_outputs is None and self.settings.trace_dir is None:
            return []
        try:
            return [cell.id for cell in self.bench.cells]
        except (BatchFileError, UsageError):
            return []

    def _register_xdist_roles(self) -> None:
        config = self.config
        if self.configured:  # a plain pytest-benchmark project sees pytest-benchmark as it is
            xdist_workers.measure_despite_inherited_variables(config)
        worker = xdist_workers.config_worker_id(config)
        handed = xdist_workers.worker_input(config)
        root = benchmark_compat.storage_root(config)
        if worker is not None and xdist_workers.PARTIAL_KEY in handed:
            partial_dir = Path(handed[xdist_workers.PARTIAL_KEY])
            worker_plugin = xdist_workers.XdistWorker(config, partial_dir, worker, self.bench.unrun, _finished)
            config.pluginmanager.register(worker_plugin)
        elif xdist_workers.is_controller(config) and self.configured and root is not None:
            self._check_paths(on_worker=False)
            try:
                partial_dir = xdist_workers.new_partial_dir(root)
            except OSError as exc:
                raise UsageError(f"benchmark storage {root}: {exc.strerror or exc}") from None
            self.controller = xdist_workers.XdistController(config, partial_dir, self.bench.unrun)
            config.pluginmanager.register(self.controller)
            self._use()  # SIGTERM as Ctrl-C from here: xdist then shuts its workers down, each stopping its engine

    def _prepare_gates(self) -> None:
        """In a session that runs cells: refuse gates that would compare nothing, and pick the baseline before this
        run adds itself to the storage."""
        config = self.config
        if xdist_workers.is_worker(config) or not self.settings.gate_rules:
            return  # workers measure despite pytest-benchmark's xdist switch-off; the controller gates the merged run
        measured = benchmark_compat.measures(config) or (
            benchmark_compat.loaded(config) and xdist_workers.is_controller(config)
        )
        if not measured:
            raise UsageError(
                "--vllmbench-gate needs pytest-benchmark to measure, but it is disabled here (--benchmark-disable): "
                "a gate would pass with nothing measured"
            )
        root = benchmark_compat.storage_root(config)
        if root is not None:
            self.end.pick_baseline(root, this_machine())

    @pytest.hookimpl(tryfirst=True)  # before xdist starts its workers
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """What needs pytest-benchmark's session, whose pytest_configure may run after ours: the xdist roles and,
        on the controller (it collects nothing), the gates' checks and baseline."""
        try:
            self._register_xdist_roles()
            if self.controller is not None and not self._collect_only:
                self._prepare_gates()
        except UsageError as exc:
            raise pytest.UsageError(str(exc)) from None

    def _use(self) -> None:
        """This session runs vLLM cells: from now on the plugin acts, and learns which file the run is saved in."""
        if not self.in_use:
            self.in_use = True
            benchmark_compat.watch_saves(self.config, self._saved)
            # to the end of the session, not of its cells: a SIGTERM while the run is saved or the report written
            # stops them as Ctrl-C does (no half-written file), instead of killing the process mid-write
            self._sigterm = SigtermAsInterrupt().__enter__()

    def _saved(self, path: Path) -> None:
        self.end.saved_run = path

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        if self.collection_error is not None:
            raise pytest.UsageError(self.collection_error)
        if not any(CELL_FIXTURE in getattr(item, "fixturenames", ()) for item in items):
            return
        self._use()
        on_worker = xdist_workers.is_worker(config)
        if on_worker and xdist_workers.PARTIAL_KEY not in xdist_workers.worker_input(config):
            raise pytest.UsageError(
                "vLLM benchmark cells under xdist need the project to configure pytest-vllmbench (a [tool.vllmbench] "
                "table in pyproject.toml, a vllmbench_* ini key or a vllmbench option), so the controller keeps "
                "each engine's cells on one worker and saves their results"
            )
        if self._collect_only:
            return  # nothing will run: no path is written, no baseline compared
        try:
            self._check_paths(on_worker)
            self._prepare_gates()
        except UsageError as exc:
            raise pytest.UsageError(str(exc)) from None

    @pytest.hookimpl(optionalhook=True)
    def pytest_benchmark_update_machine_info(self, config: pytest.Config, machine_info: dict[str, Any]) -> None:
        if self.in_use:
            machine_info["vllmbench"] = machine.machine_info()

    @pytest.hookimpl(optionalhook=True)
    def pytest_benchmark_update_json(
        self, config: pytest.Config, benchmarks: list[Any], output_json: dict[str, Any]
    ) -> None:
        for warning in benchmark_compat.fold_interleaved_rounds(output_json.get("benchmarks", [])):
            self._warn(warning)
        self.end.score_saved_json(output_json)

    def _current_cells(self) -> dict[str, SavedCell]:
        fixtures = benchmark_compat.measured_benchmarks(self.config) + (
            self.controller.merged if self.controller else []
        )
        measured = [fixture for fixture in fixtures if not fixture.has_error]
        return self.end.current_cells(
            [fixture.extra_info for fixture in measured], [str(fixture.param or "") for fixture in measured]
        )

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """After pytest-benchmark saved the run: gate it, then regenerate the Markdown report from the whole storage."""
        config = self.config
        merged_into = self.controller.merge_and_save() if self.controller is not None else None
        if self.controller is not None and merged_into is not None:
            config.get_terminal_writer().line(
                f"vllmbench: merged {len(self.controller.merged)} cell(s) from the xdist workers into one run in "
                f"{merged_into}"
            )
        if xdist_workers.is_worker(config) or not self.in_use or self._collect_only:
            return
        if self.settings.gate_rules and exitstatus == pytest.ExitCode.INTERRUPTED:
            config.get_terminal_writer().line(
                "vllmbench gate: not run: the session was interrupted, so cells it did not reach are not regressions",
                yellow=True,
            )
        elif self.settings.gate_rules:
            self._run_gates(session)
        ran_none = self.controller is None and not benchmark_compat.measured_benchmarks(config)
        saving_here = self._saving() and benchmark_compat.measures(config)
        if (
            saving_here
            and ran_none
            and exitstatus != pytest.ExitCode.INTERRUPTED
            and has_answer_to_save(self.end.unrun)
        ):
            # pytest-benchmark saves nothing when no benchmark ran, but "does not fit" and "skipped" are an answer
            benchmark_compat.save_run(config, [], {})
        root = benchmark_compat.storage_root(config)
        if self.settings.report is not None and self.end.saved_run is not None and root is not None:
            self._write_report(session, root)

    def _run_gates(self, session: pytest.Session) -> None:
        writer = self.config.get_terminal_writer()
        verdict = self.end.run_gates(self._current_cells())
        if verdict.baseline is None:
            writer.line(
                f"vllmbench gate: no baseline run ({self.settings.baseline!r}) for this machine in the storage; "
                "nothing was compared",
                yellow=True,
            )
            return
        writer.line(f"\nvllmbench gate against {verdict.baseline}:")
        writer.line(gate.table(verdict.checks))
        if verdict.failed:
            writer.line(f"vllmbench gate failed: {gate.summary(verdict.checks)}", red=True, bold=True)
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _write_report(self, session: pytest.Session, root: Path) -> None:
        """The run is saved already: a report that cannot be written fails the session but loses no measurement."""
        writer = self.config.get_terminal_writer()
        try:
            path = self.end.write_report(root)
        except ReportNotWritten as exc:
            writer.line(f"vllmbench: the run is saved, but the report was not regenerated: {exc}", red=True, bold=True)
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
            return
        writer.line(f"vllmbench: regenerated {path}")

    @pytest.hookimpl(trylast=True)  # after pytest-benchmark's wall-time table
    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        """The session's cells in one table, the gate verdicts, and where the run and the report went."""
        if not self.in_use or xdist_workers.is_worker(config):
            return
        block = self.end.summary(self._current_cells())
        if block:
            terminalreporter.write_sep("=", "vllmbench summary")
            terminalreporter.write_line(block)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self._sigterm is not None:
            self._sigterm.__exit__(None, None, None)


class CutShortCells:
    """A cell cut short leaves pytest-benchmark a fixture with no rounds (Ctrl-C, SIGTERM, or a SystemExit in its
    first round) or with rounds but no vllmbench figures (an error after the timing: the run records the cell as
    failed instead). Such a fixture is dropped before pytest-benchmark's own sessionfinish would save it (or fail
    on its empty stats and save none of the others). And an interrupt or a file that cannot be written while the
    session ends is one line, not a traceback. Its own plugin: the session's pytest_sessionfinish runs last, this
    one first (pytest reads only `pytest_*` names)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> Iterator[None]:
        benchmark_compat.drop_unfinished(self.config, _finished)
        try:
            yield
        except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM while engines stop, the run is saved or the report written
            self.config.get_terminal_writer().line(
                f"vllmbench: interrupted while the session ended ({str(exc) or 'Ctrl-C'}): each file is as it was or "
                "written whole",
                red=True,
            )
            session.exitstatus = pytest.ExitCode.INTERRUPTED
        except OSError as exc:  # pytest-benchmark's own save (a full disk): what was measured cannot be kept
            self.config.get_terminal_writer().line(
                f"vllmbench: the session ended, but a file it writes could not be written: {exc}", red=True, bold=True
            )
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _finished(bench: Any) -> bool:
    """A cell whose timed rounds all ran and whose figures were recorded (a plain benchmark: its rounds ran)."""
    is_cell = CELL_FIXTURE in (getattr(bench, "params", None) or {})
    return benchmark_compat.has_rounds(bench) and (
        not is_cell or "vllmbench_schema" in (getattr(bench, "extra_info", None) or {})
    )
