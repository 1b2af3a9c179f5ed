"""Which cells are ranked together, their one score each, and the report sections built on it: the Answer, the
Ranking and the engine settings per group."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pytest_vllmbench.results import answer, report_engine
from pytest_vllmbench.results.labels import cell_label, dataset_label, fmt, legend, money
from pytest_vllmbench.results.latest import Latest
from pytest_vllmbench.results.markdown_table import markdown_table
from pytest_vllmbench.results.saved_run import SavedCell
from pytest_vllmbench.results.scoring import score_cells

Scorer = Callable[[Sequence[SavedCell]], list[dict[str, Any]]]  # cells -> {score, components, ...} each
RankKey = tuple[str, str, str, Any, Any]  # machine, workload label, sha256, requests, memory budget
HEADERS = [
    "Rank",
    "Cell",
    "Score",
    "Throughput",
    "Total time",
    "Quality",
    "Flexibility",
    "Job h",
    "Job kWh",
    "Job cost",
]


class Ranker:
    """Scores a group of cells: the project's scorer (the pytest_vllmbench_score hook) if any, else the weights."""

    def __init__(self, weights: dict[str, float], flexibility: dict[str, float], scorer: Scorer | None) -> None:
        self.weights, self.flexibility, self.scorer = weights, flexibility, scorer

    def __call__(self, cells: list[SavedCell]) -> list[dict[str, Any]]:
        graded = [ungraded(cell) if cell.outputs_cut_at is not None else cell for cell in cells]
        if self.scorer is not None:
            return self.scorer(graded)
        return score_cells(graded, self.weights, self.flexibility)


def ungraded(cell: SavedCell) -> SavedCell:
    """The cell without quality figures: outputs cut at a token cap say nothing of the model's answers."""
    return cell.with_figures({"quality_accuracy": None, "quality_valid_rate": None})


def weights_line(weights: dict[str, float]) -> str:
    total = sum(weights.values()) or 1.0
    return ", ".join(f"{name.replace('_', ' ')} {value / total:.0%}" for name, value in weights.items())


def ranking_groups(latest: Latest) -> dict[RankKey, list[SavedCell]]:
    """The cells ranked together: same machine, workload and request count; a memory budget ranks on its own."""
    groups: dict[RankKey, list[SavedCell]] = {}
    for (machine, _, _), (_, cell) in sorted(latest.items()):
        if not cell.ok:
            continue
        dataset = cell.dataset or {}
        key = (
            machine,
            dataset_label(dataset),
            dataset.get("sha256", ""),
            cell.get("n_requests"),
            cell.gpu_memory_budget_gib,
        )
        groups.setdefault(key, []).append(cell)
    return groups


def group_scores(latest: Latest, rank: Ranker) -> dict[int, float]:
    """Each ranked cell's score in its ranking group (by id of the cell): the one score every table shows."""
    scores = {}
    for cells in ranking_groups(latest).values():
        scores.update({id(cell): float(result["score"]) for result, cell in zip(rank(cells), cells, strict=True)})
    return scores


def answer_part(latest: Latest, rank: Ranker) -> str:
    ranked = sorted(ranking_groups(latest).items(), key=lambda item: (item[0][0], item[0][1], -(item[0][3] or 0)))
    groups = [  # per machine and workload, the group that measured the most requests (nearest the job) first
        (machine, f"{path}, {fmt(n)} requests measured", cells)
        for (machine, path, _, n, budget), cells in ranked
        if budget is None
    ]
    machine_of = {id(cell): machine for (machine, _, _), (_, cell) in latest.items()}
    budget_cells = [
        cell
        for _, cell in sorted(latest.values(), key=lambda pair: pair[1].cell)
        if cell.gpu_memory_budget_gib is not None
    ]

    def label(cell: SavedCell) -> str:
        machine = machine_of.get(id(cell))
        return (
            cell_label(cell)
            if cell.gpu_memory_budget_gib is None or machine is None
            else f"{cell_label(cell)} on {machine}"
        )

    return answer.answer_section(groups, budget_cells, rank, rank.weights, label)


def engine_part(latest: Latest) -> list[str]:
    groups = [
        (f"{machine}: {path}, {fmt(n)} requests" + ("" if budget is None else f", {budget:g} GiB budget"), cells)
        for (machine, path, _, n, budget), cells in ranking_groups(latest).items()
    ]
    section = report_engine.engine_section(groups, cell_label)
    return [] if section is None else [section]


def ranking_section(latest: Latest, rank: Ranker) -> str:
    parts = [
        f"Weights: {weights_line(rank.weights)} (re-normalised over the rest, and said so under the group, where a"
        " group has no quality figure). Flexibility per mode: "
        + ", ".join(f"{mode} {value:g}" for mode, value in rank.flexibility.items())
        + ". Throughput and total time are relative to the best cell of the same machine and workload. Job h,"
        " kWh and cost are the full job (each cell's project_to requests): hours include loading, kWh is the"
        " measured energy per request times the job (loading left out), cost is hours x the GPU hourly price x"
        " the cell's GPUs. A cell with rounds is scored at their mean rate and the mean of their projected hours,"
        ' over the runs the "Offline vs server" verdicts pool. Outputs cut at a token cap are not graded: their'
        " quality is left out."
    ]
    for (machine, path, _, n_requests, budget), cells in ranking_groups(latest).items():
        results = rank(cells)
        scored = sorted(zip(results, cells, strict=True), key=lambda pair: -pair[0]["score"])
        rows = [
            [
                place,
                cell_label(cell),
                f"{result['score']:.3f}",
                *(fmt(result["components"][name], 2) for name in answer.COMPONENT_NAMES),
                fmt(cell.projected_hours, 1),
                fmt(cell.projected_kwh, 2),
                money(cell, cell.projected_cost),
            ]
            for place, (result, cell) in enumerate(scored, start=1)
        ]
        within = "" if budget is None else f", memory budget {budget:g} GiB per GPU"
        used = results[0].get("weights") or {} if results else {}
        renormalised = answer.renormalised_note(rank.weights, used, answer.why_unmeasured(cells))
        notes = [f"{renormalised[0].upper()}{renormalised[1:]}." if renormalised else "", legend(cells)]
        parts.append(
            f"### {machine}: {path}, {fmt(n_requests)} requests{within}\n\n"
            + markdown_table(rows, HEADERS)
            + "".join(f"\n\n{note}" for note in notes if note)
        )
    return "\n\n".join(parts)
