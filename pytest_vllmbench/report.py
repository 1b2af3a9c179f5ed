"""BENCHMARKS.md from every saved run: status, matrix, per-machine tables, runs; hand-written parts kept."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from tabulate import tabulate

from pytest_vllmbench import plots as plotting
from pytest_vllmbench.budget import label
from pytest_vllmbench.fileio import write_text_atomic
from pytest_vllmbench.roofline import weights_gib
from pytest_vllmbench.scoring import DEFAULT_FLEXIBILITY, check_weights, score_cells
from pytest_vllmbench.storage import SavedRun, load_runs

HAND_WRITTEN = re.compile(
    r"<!-- vllmbench:hand-written (?P<name>[\w-]+) -->\n(?P<body>.*?)<!-- /vllmbench:hand-written (?P=name) -->",
    re.DOTALL,
)
PLACEHOLDERS = {
    "intro": "_What this page is for, which job it sizes, who reads it. Written by hand; regeneration keeps it._\n",
    "decisions": "_Key decisions and learnings, dated. Written by hand; regeneration keeps it._\n",
}
MISSING = "-"


def hand_written_sections(text: str) -> dict[str, str]:
    return {match["name"]: match["body"] for match in HAND_WRITTEN.finditer(text)}


def _section(name: str, kept: dict[str, str]) -> str:
    body = kept.get(name, PLACEHOLDERS.get(name, ""))
    return f"<!-- vllmbench:hand-written {name} -->\n{body}<!-- /vllmbench:hand-written {name} -->"


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _pair(cell: dict[str, Any], metric: str) -> str:
    p50, p99 = cell.get(f"{metric}_ms_p50"), cell.get(f"{metric}_ms_p99")
    return MISSING if p50 is None else f"{p50:,.0f} / {p99:,.0f}"


Latest = dict[tuple[str, str, str], tuple[SavedRun, dict[str, Any]]]


def _workload(cell: dict[str, Any]) -> str:
    return (cell.get("dataset") or {}).get("path", MISSING)


def _split(cell: dict[str, Any]) -> str:
    """How one engine spans GPUs: 'TP 2, PP 2', or '' for a single device."""
    args = cell.get("engine_args") or {}
    return ", ".join(f"{name} {args[key]}" for key, name in (("tensor_parallel_size", "TP"),
                                                            ("pipeline_parallel_size", "PP"))
                     if int(args.get(key, 1)) > 1)


def latest_cells(runs: list[SavedRun]) -> Latest:
    """The newest saved result of each (machine, cell and its GPU split, workload)."""
    latest: Latest = {}
    for run in runs:  # oldest first, so newer overwrite
        for cell in run.cells:
            latest[(run.machine, f"{cell['cell']} {_split(cell)}{_budget_key(cell)}", _workload(cell))] = (run, cell)
    return latest


def _dummy(cell: dict[str, Any]) -> bool:
    """Whether the figures come from vLLM's dummy (random) weights: every label says so."""
    return (cell.get("engine_args") or {}).get("load_format") == "dummy"


def _model(cell: dict[str, Any]) -> str:
    name = f"{cell['model']} (dummy weights)" if _dummy(cell) else cell["model"]
    budget = cell.get("gpu_memory_budget_gib")
    return name if budget is None else f"{name} ({label(budget, cell.get('gpus') or [])})"


def _budget_key(cell: dict[str, Any]) -> str:
    """Cells run under a memory budget are kept apart from the same cell on the whole GPU."""
    budget = cell.get("gpu_memory_budget_gib")
    return "" if budget is None else f" budget {budget:g}"


def _money(cell: dict[str, Any], key: str, digits: int = 2) -> str:
    text = _fmt(cell.get(key), digits)
    return f"{text} {cell['cost_currency']}" if text != MISSING and cell.get("cost_currency") else text


def _fit_table(latest: Latest) -> str:
    """Model x memory budget -> fits (weights, room left) or does not fit, from the cells run with --gpu-memory."""
    rows = []
    for (machine, _, workload), (_, cell) in sorted(latest.items()):
        budget = cell.get("gpu_memory_budget_gib")
        if budget is None:
            continue
        n_gpus = max(len(cell.get("gpus") or []), 1)
        weights = weights_gib(cell.get("params_b"), cell.get("dtype"))
        ok = cell.get("status", "ok") == "ok"
        room = None if weights is None or not ok else budget * n_gpus - weights
        rows.append([_model(cell), cell["mode"], machine, f"{budget:g} GiB" + (f" x {n_gpus}" if n_gpus > 1 else ""),
                     "fits" if ok else cell["status"], _fmt(weights, 1), _fmt(room, 1),
                     _fmt(cell.get("requests_per_s")) if ok else MISSING])
    if not rows:
        return "No cell run under a memory budget yet (`--gpu-memory=16GiB`)."
    headers = ["Model", "Mode", "Machine", "Budget", "Fits?", "Weights GiB (est.)", "Left for KV cache GiB (at most)",
               "req/s"]
    return tabulate(rows, headers, tablefmt="github", disable_numparse=True)


def _status(cell: dict[str, Any]) -> str:
    if cell.get("status", "ok") != "ok":
        return cell["status"]
    failed = cell.get("n_failed") or 0
    return f"ok, {failed} failed requests" if failed else "ok"


def _matrix(latest: Latest) -> str:
    rows = [
        [_model(cell) + (f" ({_split(cell)})" if _split(cell) else ""), cell["mode"], machine, workload, _status(cell), _fmt(cell.get("requests_per_s")),
         _fmt(cell.get("projected_hours")), _fmt(cell.get("peak_vram_mib"))]
        for (machine, _, workload), (_, cell) in sorted(latest.items())
    ]
    headers = ["Model", "Mode", "Machine", "Workload", "Status", "Throughput (req/s)", "Total time (h)",
               "Peak VRAM (MiB)"]
    return tabulate(rows, headers, tablefmt="github", disable_numparse=True)


def _machine_tables(latest: Latest) -> str:
    parts = []
    for machine in sorted({key[0] for key in latest}):
        rows = []
        for (m, _, _), (run, cell) in sorted(latest.items()):
            if m != machine:
                continue
            rows.append([
                _model(cell), _fmt(cell.get("params_b")), cell["mode"], _gpus(cell), _fmt(cell.get("requests_per_s")),
                _fmt(cell.get("output_tokens_per_s"), 1), _pair(cell, "ttft"), _pair(cell, "tpot"),
                _pair(cell, "e2el"), _fmt(cell.get("load_s"), 1), _fmt(cell.get("peak_vram_mib")),
                _fmt(cell.get("roofline_pct"), 1), _fmt(cell.get("projected_hours"), 1),
                _fmt(cell.get("joules_per_request"), 1), _money(cell, "cost_per_1m_output_tokens"), _quality(cell),
                _fmt(cell.get("score"), 3), f"`{run.path}`",
            ])
        headers = ["Model", "Size (B)", "Mode", "GPUs", "req/s", "out tok/s", "TTFT p50/p99 ms", "TPOT p50/p99 ms",
                   "E2EL p50/p99 ms", "Load s", "Peak VRAM MiB", "Roofline %", "Projected h",
                   "J/req", "Cost/1M out tok", "Quality",
                   "Score (in run)", "Saved run"]
        parts.append(f"### {machine}\n\n" + tabulate(rows, headers, tablefmt="github", disable_numparse=True))
    return "\n\n".join(parts)


def _gpus(cell: dict[str, Any]) -> str:
    """GPUs the cell's engine used, with its tensor/pipeline parallel sizes when above 1."""
    count = len(cell.get("gpus") or [])
    return f"{count} ({_split(cell)})" if _split(cell) else str(count)


def _cell_label(cell: dict[str, Any]) -> str:
    text = f"{cell['cell']} ({_split(cell)})" if _split(cell) else cell["cell"]
    text = f"{text} (dummy weights)" if _dummy(cell) else text
    budget = cell.get("gpu_memory_budget_gib")
    return text if budget is None else f"{text} ({label(budget, cell.get('gpus') or [])})"


def _parity(runs: list[SavedRun]) -> str:
    rows = [
        [f"`{run.path}`", run.machine, _cell_label(cell), (cell.get("dataset") or {}).get("path", MISSING),
         _fmt(cell.get("requests_per_s")), _fmt(cell.get("vllm_bench_requests_per_s")),
         _fmt(cell.get("vllm_bench_ratio"), 3)]
        for run in runs for cell in run.cells if "vllm_bench_ratio" in cell
    ]
    if not rows:
        return "No parity run saved yet (`--dataset=random:512:256:1000 --vllm-bench-parity`)."
    headers = ["Run", "Machine", "Cell", "Workload", "Ours req/s", "vllm bench throughput req/s", "Ratio"]
    return tabulate(rows, headers, tablefmt="github", disable_numparse=True)


def _quality(cell: dict[str, Any]) -> str:
    parts = []
    if cell.get("quality_accuracy") is not None:
        parts.append(f"acc {cell['quality_accuracy']:.0%}")
    if cell.get("quality_valid_rate") is not None:
        parts.append(f"valid {cell['quality_valid_rate']:.0%}")
    return ", ".join(parts) or MISSING


def _weights_line(weights: dict[str, float]) -> str:
    total = sum(weights.values()) or 1.0
    return ", ".join(f"{name.replace('_', ' ')} {value / total:.0%}" for name, value in weights.items())


def _ranking(latest: Latest, weights: dict[str, float],
             flexibility: dict[str, float]) -> str:
    groups: dict[tuple[str, str, str, Any, Any], list[dict[str, Any]]] = {}
    for (machine, _, _), (_, cell) in sorted(latest.items()):
        if cell.get("status", "ok") != "ok":
            continue
        dataset = cell.get("dataset") or {}
        key = (machine, dataset.get("path", "?"), dataset.get("sha256", ""), cell.get("n_requests"),
               cell.get("gpu_memory_budget_gib"))  # a budget asks another question: ranked on its own
        groups.setdefault(key, []).append(cell)
    parts = [f"Weights: {_weights_line(weights)}. Flexibility per mode: "
             + ", ".join(f"{mode} {value:g}" for mode, value in flexibility.items())
             + ". Throughput and total time are relative to the best cell of the same machine and workload. Job h,"
             " kWh and cost are the full job (each cell's project_to requests): hours include loading, kWh is the"
             " measured energy per request times the job (loading left out), cost is hours x the GPU hourly price x"
             " the cell's GPUs."]
    for (machine, path, _, n_requests, budget), cells in groups.items():
        scored = sorted(zip(score_cells(cells, weights, flexibility), cells), key=lambda pair: -pair[0]["score"])
        rows = [
            [rank, _cell_label(cell), f"{result['score']:.3f}", _fmt(result["components"]["throughput"], 2),
             _fmt(result["components"]["total_time"], 2), _fmt(result["components"]["quality"], 2),
             _fmt(result["components"]["flexibility"], 2), _fmt(cell.get("projected_hours"), 1),
             _fmt(cell.get("projected_kwh"), 2), _money(cell, "projected_cost")]
            for rank, (result, cell) in enumerate(scored, start=1)
        ]
        headers = ["Rank", "Cell", "Score", "Throughput", "Total time", "Quality", "Flexibility", "Job h", "Job kWh",
                   "Job cost"]
        within = "" if budget is None else f", memory budget {budget:g} GiB per GPU"
        parts.append(f"### {machine}: {path}, {n_requests} requests{within}\n\n"
                     + tabulate(rows, headers, tablefmt="github", disable_numparse=True))
    return "\n\n".join(parts)


def _runs_table(runs: list[SavedRun]) -> str:
    rows = []
    for run in reversed(runs):
        for cell in run.cells:
            dataset = cell.get("dataset") or {}
            rows.append([
                f"`{run.path}`", run.datetime[:19], run.machine, _cell_label(cell), dataset.get("path", MISSING),
                _fmt(cell.get("n_requests")), _fmt(cell.get("input_tokens")), _fmt(cell.get("output_tokens")),
                _fmt(cell.get("wall_s"), 2), _fmt(cell.get("load_s"), 2), _engine(cell),
            ])
    headers = ["Run", "When (UTC)", "Machine", "Cell", "Dataset", "Requests", "Input tok", "Output tok",
               "Wall s", "Load s", "Engine"]
    return tabulate(rows, headers, tablefmt="github", disable_numparse=True)


def _engine(cell: dict[str, Any]) -> str:
    engine = cell.get("engine")
    if not engine:
        return MISSING
    return f"{engine.get('name', '?')} {engine.get('version', '')} ({engine.get('platform', '?')})".strip()


def _current_status(runs: list[SavedRun], latest: Latest) -> str:
    if not runs:
        return "No saved runs yet: run `make bench` (or `pytest benchmarks/ --benchmark-save=NAME`)."
    newest = runs[-1]
    ok = [cell for _, cell in latest.values() if cell.get("status", "ok") == "ok" and cell.get("requests_per_s")]
    lines = [
        f"- **Last run:** `{newest.path}` ({newest.datetime[:19]} UTC) on {newest.machine}: "
        f"{', '.join(cell['cell'] for cell in newest.cells)}",
        f"- **Saved runs:** {len(runs)} on {len({run.machine for run in runs})} machine(s)",
    ]
    if ok:
        best = max(ok, key=lambda cell: cell["requests_per_s"])
        lines.append(
            f"- **Highest throughput so far:** {best['cell']} at {_fmt(best['requests_per_s'])} req/s; "
            f"{_fmt(best.get('project_to'))} requests would take {_fmt(best.get('projected_hours'), 1)} h"
        )
    return "\n".join(lines)


def plot_cells(runs: list[SavedRun]) -> dict[str, list[plotting.PlotCell]]:
    """The newest cell of each machine that ran, labelled as in the tables (workload named when several)."""
    machines: dict[str, list[plotting.PlotCell]] = {}
    latest = latest_cells(runs)
    for (machine, _, workload), (_, cell) in sorted(latest.items()):
        if cell.get("status", "ok") != "ok":
            continue
        several = len({key[2] for key in latest if key[0] == machine}) > 1
        label = _cell_label(cell) + (f" [{Path(workload).name}]" if several else "")
        machines.setdefault(machine, []).append((label, cell))
    return machines


def _plots_section(plots: list[tuple[str, str]] | str) -> str:
    """Markdown image links (paths relative to the report), or the note saying why there are none."""
    if isinstance(plots, str):
        return plots
    if not plots:
        return "No plot yet: no saved cell has figures to draw."
    return "\n\n".join(f"![{title}]({path})" for title, path in plots)


def render(runs: list[SavedRun], previous: str = "", weights: dict[str, float] | None = None,
           flexibility: dict[str, float] | None = None, plots: list[tuple[str, str]] | str | None = None) -> str:
    weights = check_weights(weights or {})
    flexibility = {**DEFAULT_FLEXIBILITY, **(flexibility or {})}
    kept = hand_written_sections(previous)
    latest = latest_cells(runs)
    parts = [
        "# vLLM batch benchmarks",
        "<!-- Generated by pytest-vllmbench from the runs saved under .benchmarks/. Edit only inside the"
        " hand-written sections: everything else is rewritten after every saved run. -->",
        _section("intro", kept),
        "## Current status\n\n" + _current_status(runs, latest),
        "## Test matrix\n\nThe newest result of each model x mode on each machine. Total time is the projected"
        " wall time of the full job: load once, then every request at the measured rate.\n\n" + _matrix(latest),
        "## Results by machine\n\n" + _machine_tables(latest),
        *(["## Plots\n\nThroughput of the newest cells on each machine, then each cell's TTFT and E2EL"
           " distribution (from 101 saved percentiles; no per-request data is kept).\n\n"
           + _plots_section(plots)] if plots is not None else []),
        "## Memory budgets\n\nCells run with `--gpu-memory=SIZE`: vLLM may use only that much of each GPU (weights,"
        " activations and KV cache), so the table says whether the model would fit on a card of that size. The speed"
        " is the GPU's that ran it, not the smaller card's. Weights are params x bytes per param; what is left for"
        " the KV cache is the budget minus the weights, before activations and CUDA graphs take their share.\n\n"
        + _fit_table(latest),
        "## Ranking\n\n" + _ranking(latest, weights, flexibility),
        "## Parity with `vllm bench throughput`\n\nThe same engine args and random workload, ours then vLLM's own"
        " benchmark in the same session: a ratio near 1 says the harness adds nothing.\n\n" + _parity(runs),
        "## Decisions and learnings\n\n" + _section("decisions", kept),
        "## Runs\n\nEvery saved cell, newest first; the JSON files hold the complete figures.\n\n" + _runs_table(runs),
    ]
    extra = [name for name in kept if name not in PLACEHOLDERS]
    if extra:
        parts.append("## Other notes\n\n" + "\n\n".join(_section(name, kept) for name in extra))
    return "\n\n".join(parts) + "\n"


def write_report(storage_root: Path, out: Path, weights: dict[str, float] | None = None,
                 flexibility: dict[str, float] | None = None) -> Path:
    previous = out.read_text(encoding="utf-8") if out.exists() else ""
    runs = load_runs(storage_root)
    write_text_atomic(out, render(runs, previous, weights, flexibility, _write_plots(runs, out)))
    return out


def plots_folder(out: Path) -> Path:
    """Beside the report: BENCHMARKS.md -> benchmarks-plots/."""
    return out.parent / f"{out.stem.lower()}-plots"


def _write_plots(runs: list[SavedRun], out: Path) -> list[tuple[str, str]] | str:
    try:
        written = plotting.render_plots(plot_cells(runs), plots_folder(out))
    except plotting.PlotsUnavailable as exc:
        return f"_No plots: {exc}. The tables above hold every figure._"
    return [(plot.title, plot.path.relative_to(out.parent).as_posix()) for plot in written]
