"""One cell's verdict: measured, not run for a reason that is an answer (does not fit, skipped), or failed.

The pytest adapter turns a verdict into pass, skip or fail; every message here is already scrubbed of secrets.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_vllmbench.config.matrix import Cell
from pytest_vllmbench.engines.base import CellSkip, DoesNotFit, EngineStartError
from pytest_vllmbench.engines.openai_client import EndpointUnreachable
from pytest_vllmbench.engines.supervisor import EngineStopError
from pytest_vllmbench.measure.cell_record import UndeclaredFigure
from pytest_vllmbench.measure.progress import ProgressFactory
from pytest_vllmbench.run.cell_run import CellOutcome, Timed
from pytest_vllmbench.run.session import BenchSession, QualityHook


@dataclass(frozen=True)
class Verdict:
    outcome: CellOutcome | None = None  # the measurement, saved even when the cell then fails
    skipped: str | None = None
    failed: str | None = None


def measure_cell(
    session: BenchSession, cell: Cell, timed: Timed, quality_hook: QualityHook | None, progress: ProgressFactory | None
) -> Verdict:
    """Run the cell; an engine that cannot start, a dead endpoint or an engine that would not stop is a verdict,
    and each cell that could not be measured is recorded as unrun in the session."""
    plan = session.plan(cell)
    try:
        outcome = session.run(plan, timed, quality_hook, progress)
    except DoesNotFit as exc:
        session.record_unrun(plan, str(exc))
        return Verdict(skipped=f"{cell.id}: {exc}")
    except CellSkip as exc:
        session.record_unrun(plan, f"skipped: {exc}")
        return Verdict(skipped=str(exc))
    except EngineStartError as exc:
        others = session.engine_slot.alive()  # --interleave: its model's other engines hold memory too
        fit = None if others else plan.fit_status(str(exc))
        if fit:
            session.record_unrun(plan, fit)
            return Verdict(skipped=f"{cell.id}: {fit}")
        beside = f" (beside {others} other engine(s) of the model, --interleave)" if others else ""
        session.record_unrun(plan, "failed: " + str(exc).splitlines()[0][:300] + beside)
        return Verdict(failed=f"{cell.id}: engine did not start{beside}: {session.scrub(str(exc))}")
    except EndpointUnreachable as exc:
        return Verdict(failed=f"{cell.id}: {session.scrub(str(exc))}")
    except UndeclaredFigure as exc:  # an engine or a project's quality hook gave a figure that cannot be saved
        session.record_unrun(plan, f"failed: {exc}"[:300])
        return Verdict(failed=f"{cell.id}: {exc}")
    except EngineStopError as exc:  # the previous engine would not stop: its memory is not free for this one
        session.record_unrun(plan, "failed: " + str(exc)[:300])
        return Verdict(failed=f"{cell.id}: the previous engine did not stop: {session.scrub(str(exc))}")
    except (Exception, SystemExit, GeneratorExit) as exc:  # a bug or a project's hook: the test shows it, the run too
        session.record_unrun(plan, f"failed: {type(exc).__name__}: {exc}".splitlines()[0][:300])
        raise
    if outcome.result.outputs_error:
        return Verdict(
            outcome,
            failed=f"{cell.id}: measured and saved, but a file it writes was not written: {outcome.result.outputs_error}",
        )
    if outcome.fault:
        return Verdict(outcome, failed=f"{cell.id}: {session.scrub(outcome.fault)}")
    return Verdict(outcome)
