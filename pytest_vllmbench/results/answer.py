"""The Answer section that opens BENCHMARKS.md: per machine and workload, the recommended cell and why.

Pure: takes the newest cells, returns markdown. The tie rule (`is_tie`) is the one place that decides whether a
recommendation's margin over the runner-up is real.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pytest_vllmbench.measure.roofline import weights_gib
from pytest_vllmbench.measure.rounds import overlap, stat
from pytest_vllmbench.results.bottleneck import full_in_shared_gpu, preemptions_per_100, saved_bound
from pytest_vllmbench.results.labels import fmt, is_dummy, legend
from pytest_vllmbench.results.pooled_rounds import compared, on_two_boots
from pytest_vllmbench.results.saved_run import SavedCell

Cell = Mapping[str, Any]
Scorer = Callable[[list[SavedCell]], list[dict[str, Any]]]
Label = Callable[[SavedCell], str]
COMPONENT_NAMES = {
    "throughput": "throughput",
    "total_time": "total time",
    "quality": "quality",
    "flexibility": "flexibility",
}


def intervals_overlap(first: Cell, second: Cell, metric: str = "requests_per_s") -> bool | None:
    """Whether the two cells' 95 % intervals of `metric` overlap; None unless both ran rounds."""
    a, b = stat(first, metric), stat(second, metric)
    if a is None or b is None:
        return None
    return overlap(a, b)


def is_tie(first: Cell, second: Cell, metric: str = "requests_per_s") -> bool:
    """A tie when both ran rounds and their intervals overlap: the rounds cannot tell the two apart."""
    return intervals_overlap(first, second, metric) is True


def renormalised_note(weights: Mapping[str, float], used: Mapping[str, float], why: str = "") -> str:
    """'' when every weight was used (or the scorer named none); else what was left out and how the rest were
    re-normalised."""
    dropped = [name for name in weights if name not in used]
    if not dropped or not used:  # no weights given back (a project's own scorer): nothing to say about them
        return ""
    names = [COMPONENT_NAMES.get(name, name) for name in used]
    shares = "/".join(f"{value * 100:g}" for value in _shares(used))
    what = ", ".join(COMPONENT_NAMES.get(name, name) for name in dropped)
    return f"{what} not measured{why}: ranked on {_join(names)}, {shares}"


def _shares(used: Mapping[str, float]) -> list[float]:
    total = sum(used.values()) or 1.0
    return [round(value / total, 4) for value in used.values()]


def _join(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def why_unmeasured(cells: Sequence[SavedCell]) -> str:
    """' (dummy weights)' or ' (outputs cut at 24-32 tokens)': why a group has no quality figure; '' otherwise."""
    if any(is_dummy(cell) for cell in cells):
        return " (dummy weights)"
    caps = sorted({cap for cell in cells if (cap := cell.outputs_cut_at) is not None})
    if caps:
        return f" (outputs cut at {caps[0]:,}" + (f"-{caps[-1]:,}" if len(caps) > 1 else "") + " tokens)"
    return ""


def _rate(cell: SavedCell) -> str:
    found = stat(cell, "requests_per_s")
    if found is not None:
        runs = cell.get("pooled_from")
        pooled = f" of runs {', '.join(runs)}, pooled" if runs else ""
        return f"{fmt(found['mean'])} ± {fmt(found['ci95_half'])} req/s ({found['n']} rounds{pooled})"
    return f"{fmt(cell.requests_per_s)} req/s (1 round)"


def _quality(cell: SavedCell) -> str:
    graded = cell.quality_accuracy is not None or cell.quality_valid_rate is not None
    if graded and cell.outputs_cut_at is not None:
        return f"quality not graded (outputs cut at {cell.outputs_cut_at:,} tokens)"
    if cell.quality_accuracy is not None:
        return f"accuracy {cell.quality_accuracy:.0%}"
    if cell.quality_valid_rate is not None:
        return f"valid {cell.quality_valid_rate:.0%}"
    return "quality not measured"


def _money(cell: SavedCell) -> str:
    cost = cell.projected_cost
    return f"{fmt(cost)} {cell.cost_currency or ''}".strip() if cost is not None else "cost -"


Group = tuple[str, str, list[SavedCell]]  # (machine, workload label, ok cells)


def recommendation(group: Group, scorer: Scorer, weights: Mapping[str, float], label: Label) -> list[str]:
    """The lines for one machine and workload: recommended cell, runner-up with margin or tie, what was dropped."""
    machine, workload, cells = group
    results = scorer(cells)
    ranked = sorted(zip(results, cells, strict=True), key=lambda pair: -float(pair[0]["score"]))
    (best_score, best), rest = ranked[0], ranked[1:]
    lines = [
        f"**{machine}, {workload}**: use **{label(best)}** (score {best_score['score']:.3f}): {_rate(best)}; "
        f"{fmt(best.project_to)} requests take {fmt(best.projected_hours, 1)} h, {_money(best)}, "
        f"{fmt(best.projected_kwh)} kWh; {_quality(best)}."
    ]
    if rest:
        runner_score, runner = rest[0]
        margin = float(best_score["score"]) - float(runner_score["score"])
        pair = compared(best, runner, shared_boot=False)  # as ranked: each cell's newest boot
        verdict = (
            "a **tie**: their req/s intervals overlap"
            if is_tie(*pair)
            else "no rounds on both sides, so the margin is one run's"
            if intervals_overlap(*pair) is None
            else "their req/s intervals do not overlap"
        )
        if on_two_boots(*pair):
            verdict += "; measured on two boots of the machine, whose drift is in the margin"
        lines.append(
            f"  Runner-up: {label(runner)} (score {runner_score['score']:.3f}, margin {margin:.3f}; {verdict})."
        )
    shown = [best] + [runner for _, runner in rest[:1]]
    if shared := kv_shared_note(shown, label):
        lines.append(f"  {shared}")
    if unlike := sharing_note(shown, label):
        lines.append(f"  {unlike}")
    note = renormalised_note(weights, best_score.get("weights") or {}, why_unmeasured(cells))
    if note:
        lines.append(f"  {note[0].upper()}{note[1:]}.")
    return lines


def kv_shared_note(cells: Sequence[SavedCell], label: Label) -> str:
    """'' unless a compared cell's KV cache ran full in its --interleave share of the GPU: then its rate and job
    hours understate what one engine alone would do."""
    full = [cell for cell in cells if full_in_shared_gpu(cell)]
    if not full:
        return ""
    each = "; ".join(
        f"{label(cell)}: {fmt(preemptions_per_100(cell), 1)} preemptions per 100 requests" for cell in full
    )
    return (
        f"KV cache full under --interleave ({each}): these rates and hours are for engines sharing the GPU and"
        " understate one alone."
    )


def sharing_note(cells: Sequence[SavedCell], label: Label) -> str:
    """'' unless some compared cells shared the GPU under --interleave and others had it alone: their rates were
    measured with different memory and compute, so the margin between them is not the modes' or models' alone."""
    shared = [label(cell) for cell in cells if cell.interleaved]
    alone = [label(cell) for cell in cells if not cell.interleaved]
    if not shared or not alone:
        return ""
    return (
        f"Not like for like: {_join(shared)} shared the GPU under --interleave, {_join(alone)} had it alone;"
        " the margin is partly the share of the GPU each had."
    )


def peak_gib(cell: SavedCell) -> float | None:
    return None if cell.peak_vram_mib is None else cell.peak_vram_mib / 1024


def budget_limit_gib(cell: SavedCell) -> float:
    """The budget over the cell's GPUs (the per-GPU budget times their count)."""
    return (cell.gpu_memory_budget_gib or 0.0) * max(len(cell.gpus or []), 1)


def budget_verdict(cell: SavedCell) -> str:
    """The one verdict of a cell run under --gpu-memory: does not fit, fits, or ran but over budget (its measured
    peak above the budget: the GPU that ran it had more). Under --interleave the peak is every live engine's
    together (NVML reads the whole device): above the budget it says nothing of this cell alone."""
    if not cell.ok:
        return "does not fit"
    peak = peak_gib(cell)
    if peak is None or peak <= budget_limit_gib(cell):
        return "fits"
    return "ran, peak shared" if cell.interleaved else "ran, but over budget"


def budget_verdicts(cells: Sequence[SavedCell], label: Label) -> list[str]:
    """One line per model run under --gpu-memory: fits or not, the measured peak beside the budget."""
    lines = []
    for cell in cells:
        budget = cell.gpu_memory_budget_gib
        if budget is None:
            continue
        verdict, limit, peak = budget_verdict(cell), budget_limit_gib(cell), peak_gib(cell)
        if not cell.ok:
            reason = str(cell.status).partition(": ")[2] or str(cell.status)
            lines.append(f"- {label(cell)}: **{verdict}** in {budget:g} GiB ({reason}).")
            continue
        if peak is None:
            seen = "peak not measured"
        elif peak > limit and cell.interleaved:
            seen = f"measured peak {peak:.1f} GiB counts every engine --interleave kept on the GPU, not this cell's"
        elif peak > limit:
            seen = f"measured peak {peak:.1f} GiB is above the budget (the GPU that ran it had more)"
        else:
            seen = f"measured peak {peak:.1f} GiB"
        weights = weights_gib(cell.params_b, cell.dtype)
        kv = (
            f"; KV cache full ({fmt(preemptions_per_100(cell), 1)} preemptions per 100 requests)"
            if saved_bound(cell) == "kv-cache"
            else ""
        )
        lines.append(
            f"- {label(cell)}: **{verdict}** in {limit:g} GiB; {seen}; weights {fmt(weights, 1)} GiB (est.){kv}."
        )
    return lines


def answer_section(
    groups: Sequence[Group],
    budget_cells: Sequence[SavedCell],
    scorer: Scorer,
    weights: Mapping[str, float],
    label: Label,
) -> str:
    if not groups and not budget_cells:
        return "No measured cell yet: nothing to recommend."
    parts = ["\n".join(recommendation(group, scorer, weights, label)) for group in groups if group[2]]
    shown = [cell for group in groups for cell in group[2]] + list(budget_cells)
    budgets = budget_verdicts(budget_cells, label)
    if budgets:
        parts.append(
            "**Memory budgets** (`--gpu-memory`): speed and cost are those of the GPU that ran the cell, not of the"
            " smaller card.\n\n" + "\n".join(budgets)
        )
    return "\n\n".join(parts + ([legend(shown)] if legend(shown) else []))
