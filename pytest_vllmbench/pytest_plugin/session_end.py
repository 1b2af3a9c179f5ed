"""What a benchmark session does with its cells once they ran: score, baseline, gates, report and summary.

No pytest here (lint-imports forbids it), so this is tested directly; session_plugin.py hands it plain values:
the cells' figures, the storage folder, the project's score hook, a function that prints a warning.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.common.files import refuse_foreign
from pytest_vllmbench.config.settings import Settings
from pytest_vllmbench.measure import machine
from pytest_vllmbench.measure.cell_record import CellRecord, CellResult
from pytest_vllmbench.results import gate, report, summary
from pytest_vllmbench.results.job_hours import on_round_means
from pytest_vllmbench.results.report_price import ReportPrice
from pytest_vllmbench.results.saved_run import SavedCell
from pytest_vllmbench.results.scoring import score_cells, scores_problem
from pytest_vllmbench.results.storage import SavedRun, describe_machine, find_baseline, finite_only, scan_runs
from pytest_vllmbench.results.sweeps import knee_lines
from pytest_vllmbench.run import batch_output, trace
from pytest_vllmbench.run.interleave import is_round_of

ProjectScorer = Callable[[list[dict[str, Any]]], list[dict[str, Any]] | None]  # None: the built-in scoring
Warn = Callable[[str], None]


class ReportNotWritten(Exception):
    """The run is saved, but the Markdown report could not be regenerated."""


@dataclass(frozen=True)
class GateVerdict:
    """The gates against one baseline run (None: no baseline, nothing was compared)."""

    baseline: Path | None
    checks: list[gate.Check]

    @property
    def failed(self) -> bool:
        return self.baseline is not None and gate.exit_code(self.checks) != gate.EXIT_OK


def _refuse_foreign_files(option: str, paths: Iterable[Path], written_here: Callable[[Path], bool]) -> None:
    for path in paths:
        try:
            refuse_foreign(path, written_here)
        except OSError as exc:
            raise UsageError(f"{option} {exc}") from None


def has_answer_to_save(unrun: Iterable[CellRecord]) -> bool:
    """Cells that did not fit or were skipped are this run's answer; a session whose cells only failed is not one
    (saved, it would become the gates' latest baseline)."""
    return any(not (cell.status or "").startswith("failed") for cell in unrun)


def check_paths(settings: Settings, storage_root: Path | None, saving: bool, cell_ids: Sequence[str] = ()) -> None:
    """Every path the session will write, tried before any engine starts: a UsageError now, not after the run.
    `saving`: this process saves the run (and so regenerates the report); `cell_ids`: the cells whose outputs and
    traces it writes, whose files must not be someone else's."""
    if settings.write_outputs is not None:
        try:
            settings.write_outputs.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--write-outputs {settings.write_outputs}: {exc.strerror or exc}") from None
        if not os.access(settings.write_outputs, os.W_OK):
            raise UsageError(f"--write-outputs {settings.write_outputs}: the folder is not writable")
        paths = [batch_output.outputs_path(settings.write_outputs, cell_id) for cell_id in cell_ids]
        _refuse_foreign_files("--write-outputs", paths, batch_output.ours)
    if settings.trace_dir is not None:
        trace.check_trace_folder(settings.trace_dir)
        paths = [trace.trace_path(settings.trace_dir, cell_id) for cell_id in cell_ids]
        _refuse_foreign_files("--trace-dir", paths, trace.ours)
    if not saving:
        return
    if storage_root is not None:
        existing = next(parent for parent in (storage_root, *storage_root.parents) if parent.exists())
        if not existing.is_dir() or not os.access(existing, os.W_OK):
            raise UsageError(f"benchmark storage {storage_root}: {existing} is not a writable folder")
    if settings.report is not None:
        report.check_report_file(settings.report)


def this_machine() -> str:
    """This machine as the saved runs describe theirs, known before anything is saved."""
    return describe_machine({"vllmbench": machine.machine_info(), "cpu": {"count": os.cpu_count()}})


class SessionEnd:
    """One session's results: the cells that could not run, the baseline, the gates, the saved run and report."""

    def __init__(self, settings: Settings, unrun: list[CellResult], project_scorer: ProjectScorer, warn: Warn) -> None:
        self.settings = settings
        self.unrun = unrun  # the runner's list: cells that did not fit, were skipped or failed
        self._project_scorer = project_scorer
        self._warn = warn
        self.baseline: SavedRun | None = None
        self.gates: GateVerdict | None = None
        self.saved_run: Path | None = None  # the file pytest-benchmark wrote for this session
        self.report: Path | None = None

    def score(self, cells: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """One dict per cell ({score, components, ...}), the project's hook first; NaN/inf figures are missing."""
        shown = [finite_only(cell) for cell in cells]  # plain dicts: the project's hook is handed extra_info's shape
        try:
            custom = self._project_scorer(shown)
            problem = None if custom is None else scores_problem(custom, len(shown))
        except (Exception, SystemExit) as exc:  # the run is measured already: a broken scorer must not lose it
            custom, problem = None, f"it raised {type(exc).__name__}: {exc}"
        if problem is not None:
            self._warn(f"the pytest_vllmbench_score hook's answer was not used ({problem:.200}): the built-in score is")
            custom = None
        if custom is not None:
            return custom
        at_means = [finite_only(on_round_means(SavedCell.of(cell))) for cell in cells]  # as the report's Ranking
        return score_cells(at_means, self.settings.weights, self.settings.flexibility)

    def score_saved_json(self, output_json: dict[str, Any]) -> None:
        """Score the run's cells against each other in the JSON pytest-benchmark is about to write; it may be
        called once per output, so it only ever overwrites."""
        saved = [
            bench for bench in output_json.get("benchmarks", []) if "vllmbench_schema" in bench.get("extra_info", {})
        ]
        if not saved and not self.unrun:
            return
        cells = [SavedCell.of(bench["extra_info"]) for bench in saved]  # the session's own records, read typed
        scores = self.score(cells)
        for bench, scored in zip(saved, scores, strict=True):
            bench["extra_info"]["score"] = scored["score"]
        measured_here = {cell.cell for cell in cells}
        output_json["vllmbench"] = {
            "weights": self.settings.weights,
            "scores": {cell.cell: scored for cell, scored in zip(cells, scores, strict=True)},
            # does not fit / failed / skipped, for the report; a cell measured here (an --interleave round of it
            # failed, others did not) is not also unrun
            "unrun": [cell.extra_info() for cell in self.unrun if cell.cell not in measured_here],
        }

    def pick_baseline(self, storage_root: Path, machine_description: str) -> None:
        """The run the gates compare against, picked before this run adds itself to the storage."""
        runs, skipped = scan_runs(storage_root)
        for message in skipped:
            self._warn(message)
        self.baseline = find_baseline(runs, self.settings.baseline, machine_description)
        if self.baseline is None and self.settings.baseline != "latest":
            raise UsageError(
                f"--vllmbench-baseline={self.settings.baseline}: no saved run of that number or name for this "
                f"machine under {storage_root}"
            )

    def current_cells(
        self, measured: Iterable[Mapping[str, Any]], test_ids: Iterable[str] | None = None
    ) -> dict[str, SavedCell]:
        """This run's cells by key (gate.by_cell): the measured ones (pytest-benchmark's `extra_info`, with their
        test ids when known), scored, and the ones that could not run. A cell's --interleave round tests count as
        the one that counts every round, as in the saved run; two tests of one cell stay two."""
        infos = list(measured)
        ids = list(test_ids) if test_ids is not None else [""] * len(infos)  # no id: no round test
        cells: list[SavedCell] = []
        last_round: dict[str, int] = {}  # cell id -> its round test's place in `cells`
        for info, test_id in zip(infos, ids, strict=True):
            if "vllmbench_schema" not in info:
                continue
            cell = SavedCell.of(info)
            if not is_round_of(test_id, cell.cell):
                cells.append(cell)
            elif (place := last_round.get(cell.cell)) is None:
                last_round[cell.cell] = len(cells)
                cells.append(cell)
            elif len(cell.rounds or ()) >= len(cells[place].rounds or ()):
                cells[place] = cell
        if cells:
            scores = self.score(cells)
            cells = [cell.with_figures({"score": scored["score"]}) for cell, scored in zip(cells, scores, strict=True)]
        return gate.by_cell([*cells, *(SavedCell.of(cell.extra_info()) for cell in self.unrun)])

    def run_gates(self, current: Mapping[str, SavedCell]) -> GateVerdict:
        if self.baseline is None:
            self.gates = GateVerdict(None, [])
        else:
            checks = gate.check(current, gate.by_cell(self.baseline.cells), self.settings.gate_rules)
            self.gates = GateVerdict(self.baseline.path, checks)
        return self.gates

    def write_report(self, storage_root: Path) -> Path:
        """Regenerate the Markdown report from the whole storage; ReportNotWritten says why it was not."""
        settings = self.settings
        assert settings.report is not None
        price = (
            None if settings.gpu_hourly_cost is None else ReportPrice(settings.gpu_hourly_cost, settings.cost_currency)
        )
        try:
            self.report = report.write_report(
                storage_root,
                settings.report,
                settings.weights,
                settings.flexibility,
                warn=self._warn,
                scorer=self.score,
                price=price,
            )
        except (report.ReportRefused, OSError) as exc:
            raise ReportNotWritten(str(exc)) from None
        return self.report

    def summary(self, current: Mapping[str, SavedCell]) -> str:
        """The end-of-session block ('' when no cell ran): cells, knees, gates, where the run and report went."""
        cells = list(current.values())
        notes = knee_lines(cells)
        if self.gates is not None:
            notes += summary.gate_lines(
                None if self.gates.baseline is None else str(self.gates.baseline), self.gates.checks
            )
        return summary.summary_block(cells, notes, self.saved_run, self.report)
