"""How the report and the summary write a cell: the one number format, the one mark for a missing figure, and
the labels (model, cell, workload, mode, status, req/s) every table uses."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pytest_vllmbench.measure.rounds import central, plus_minus
from pytest_vllmbench.results.report_price import MARK, priced_here
from pytest_vllmbench.results.saved_run import SavedCell

MISSING = "-"  # a figure that is unknown, absent or not a finite number
DUMMY_MARK, QUANTIZED_MARK = "d", "q4"
NOT_MEASURED = "not measured"  # a figure the mode cannot see (run-batch, ray): not a gap to fill


def fmt(value: Any, digits: int = 2) -> str:
    """The one number format: thousands separators, fixed digits for fractions, MISSING for unknown."""
    if value is None or isinstance(value, bool) or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def dataset_label(dataset: Mapping[str, Any] | None) -> str:
    """'data/batch_5k.jsonl, sha256 0a3e9638', plus the transformation a script applied, if any."""
    if not dataset or not dataset.get("path"):
        return MISSING
    text = str(dataset["path"])
    if dataset.get("transform"):
        text += f" ({dataset['transform']})"
    if dataset.get("sha256"):
        text += f", sha256 {str(dataset['sha256'])[:8]}"
    return text


def workload(cell: SavedCell) -> str:
    return dataset_label(cell.dataset)


def short_workload(full: str) -> str:
    """A workload label as a table column holds it: the file's name (a random:IN:OUT:N spec stays as it is)."""
    path = full.split(" (", 1)[0].split(", sha256", 1)[0]
    return Path(path).name or full


def workload_legend(fulls: Iterable[str]) -> str:
    """'Workloads: NAME = its full label; ...' for the labels a table shortened, or ''."""
    shortened = sorted({(short_workload(full), full) for full in fulls if short_workload(full) != full})
    return "Workloads: " + "; ".join(f"{short} = {full}" for short, full in shortened) + "." if shortened else ""


SPLIT_ARGS = (("tensor_parallel_size", "TP"), ("pipeline_parallel_size", "PP"), ("ray_replicas", "replicas"))


def split(cell: SavedCell) -> str:
    """How the cell's engine spans GPUs, and how many engines ran side by side: 'TP 2, PP 2', 'replicas 2' (Ray
    Data's engine replicas), or '' for one engine on a single device."""
    args = cell.engine_args or {}
    return ", ".join(f"{name} {args[key]}" for key, name in SPLIT_ARGS if int(args.get(key, 1)) > 1)


def user_args_text(cell: SavedCell) -> str:
    """The engine args the user changed for the cell (--engine-arg), split args aside, each value as JSON writes it
    (strings bare): 'enforce_eager=true, max_num_batched_tokens=16384'."""
    args, shown_by_split = cell.engine_args_set or {}, {key for key, _ in SPLIT_ARGS}
    return ", ".join(f"{key}={_arg_text(args[key])}" for key in sorted(args) if key not in shown_by_split)


def _arg_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text.replace("|", "\\|")  # a table cell holds it


def variant(cell: SavedCell) -> str:
    """What sets this cell apart from the same model and mode as configured: its GPU split, the user's engine
    args and its client processes, e.g. 'TP 2, max_num_seqs=64, client processes 2', and which copy of the cell in
    its run it is after the first ('copy 2': a second test of the cell); '' for none of them."""
    return _joined(split(cell), user_args_text(cell), _clients_text(cell), _copy_text(cell))


def _joined(*parts: str) -> str:
    return ", ".join(part for part in parts if part)


def _clients_text(cell: SavedCell) -> str:
    return f"client processes {cell.client_processes}" if (cell.client_processes or 1) > 1 else ""


def _copy_text(cell: SavedCell) -> str:
    return f"copy {cell.copy}" if cell.copy > 1 else ""


def server_setting(cell: Mapping[str, Any]) -> str:
    """What a server cell ran with beyond its mode and API server count, which its server alone takes: the user's
    engine args and client processes ('stream_interval=8, client processes 2'); '' for any other cell."""
    if cell.get("mode") != "server":
        return ""
    typed = SavedCell.of(cell)
    return _joined(user_args_text(typed), _clients_text(typed))


def base_variant(cell: SavedCell) -> str:
    """`variant` less the `server_setting`: the variant of the model's plain cells a server so set is compared
    with."""
    return _joined(split(cell), _copy_text(cell)) if server_setting(cell) else variant(cell)


def is_dummy(cell: SavedCell) -> bool:
    """Whether the figures come from vLLM's dummy (random) weights: every label says so."""
    return bool(cell.weights) or (cell.engine_args or {}).get("load_format") == "dummy"


def weights_text(cell: SavedCell) -> str:
    """'dummy weights', or how a stand-in's random weights reached vLLM (e.g. bitsandbytes in flight)."""
    return cell.weights or "dummy weights"


def marks(cell: SavedCell) -> list[str]:
    """The short marks a label carries, each explained by `legend`: stand-in weights and a memory budget."""
    found = []
    if is_dummy(cell):
        found.append(QUANTIZED_MARK if "bitsandbytes" in weights_text(cell) else DUMMY_MARK)
    if cell.gpu_memory_budget_gib is not None:
        found.append(f"{cell.gpu_memory_budget_gib:g}G")
    return found


def _suffix(cell: SavedCell) -> str:
    parts = [f" ({variant(cell)})"] if variant(cell) else []
    parts += [f" [{','.join(marks(cell))}]"] if marks(cell) else []
    return "".join(parts)


def model_label(cell: SavedCell) -> str:
    return cell.model + _suffix(cell)


def legend(cells: Iterable[SavedCell]) -> str:
    """'Marks: [d] ...; [16G] ...' for the marks these cells' labels carry, in order of first use, or ''."""
    explained: dict[str, str] = {}
    for cell in cells:
        for mark in marks(cell):
            if mark == DUMMY_MARK:
                text = "random weights in the model's published shape: speed and memory are real, answers are not"
            elif mark == QUANTIZED_MARK:
                text = "a random checkpoint in the model's shape, quantized to 4 bits by bitsandbytes while loading"
            else:
                text = (
                    f"vLLM capped at {mark.removesuffix('G')} GiB of each GPU (`--gpu-memory`): speed and cost are"
                    " the GPU's that ran it, not a smaller card's"
                )
            explained.setdefault(mark, text)
    return "Marks: " + "; ".join(f"[{mark}] {text}" for mark, text in explained.items()) + "." if explained else ""


OVERLAPPED = "(overlapped)"


def load_text(cell: SavedCell, digits: int) -> str:
    """load_s, marked where the engine loaded beside another one (--start-ahead): longer than alone."""
    return fmt(cell.load_s, digits) + (f" {OVERLAPPED}" if cell.load_overlapped and finite(cell.load_s) else "")


def overlap_note(cells: Iterable[SavedCell]) -> str:
    """The note that explains an overlapped load time, where one is shown, or ''."""
    if not any(cell.load_overlapped and finite(cell.load_s) for cell in cells):
        return ""
    return (
        f"Load s {OVERLAPPED}: the engine started beside another one's load (`--start-ahead`), so its start took "
        "longer than alone; the timed figures ran beside an idle engine."
    )


def budget_key(cell: SavedCell) -> str:
    """Cells run under a memory budget are kept apart from the same cell on the whole GPU."""
    budget = cell.gpu_memory_budget_gib
    return "" if budget is None else f" budget {budget:g}"


def cell_label(cell: SavedCell) -> str:
    """The cell id with its GPU split and its marks: 'gemma-12b-4bit-server [q4,16G]' (see `legend`)."""
    return cell.cell + _suffix(cell)


def short_label(cell: SavedCell) -> str:
    """The cell as a plot's axis can hold it: id, then short tags for the split, the weights and a memory budget."""
    tags = [variant(cell)] if variant(cell) else []
    if is_dummy(cell):
        tags.append("bnb 4-bit, random" if "bitsandbytes" in weights_text(cell) else "dummy")
    if cell.gpu_memory_budget_gib is not None:
        tags.append(f"{cell.gpu_memory_budget_gib:g} GiB budget")
    return f"{cell.cell} ({', '.join(tags)})" if tags else cell.cell


def money(cell: SavedCell, value: float | None, digits: int = 2) -> str:
    """A cost in the cell's currency, marked when the report priced it."""
    text = fmt(value, digits)
    text = f"{text} {cell.cost_currency}" if text != MISSING and cell.cost_currency else text
    return text + MARK if text != MISSING and priced_here(cell) else text


def rate(cell: Mapping[str, Any]) -> str:
    """The one req/s of a cell everywhere: the rounds' mean ± the 95 % half-width, else its one run's figure."""
    return plus_minus(cell, "requests_per_s") or fmt(central(cell, "requests_per_s"))


def status_text(cell: SavedCell) -> str:
    if not cell.ok:
        return str(cell.status)
    failed = cell.n_failed or 0
    return f"ok, {failed} failed requests" if failed else "ok"


def gpus_text(cell: SavedCell) -> str:
    """GPUs the cell's engine used, with its tensor/pipeline parallel sizes when above 1."""
    count = len(cell.gpus or [])
    return f"{count} ({split(cell)})" if split(cell) else str(count)


def engine_text(cell: SavedCell) -> str:
    engine = cell.engine
    if not engine:
        return MISSING
    return f"{engine.get('name', '?')} {engine.get('version', '')} ({engine.get('platform', '?')})".strip()


def latency_pair(cell: Mapping[str, Any], metric: str) -> str:
    """`p50 / p99` in ms as the tables show them; a missing or non-finite figure is `-`."""
    p50, p99 = cell.get(f"{metric}_ms_p50"), cell.get(f"{metric}_ms_p99")
    if metric in (cell.get("not_measured") or ()):
        return NOT_MEASURED
    if not finite(p50):
        return MISSING
    return f"{p50:,.0f} / {f'{p99:,.0f}' if finite(p99) else MISSING}"


def quality_text(cell: Mapping[str, Any]) -> str:
    """Accuracy and JSON-valid rate as the tables show them; outputs cut at a token cap are not graded."""
    graded = cell.get("quality_accuracy") is not None or cell.get("quality_valid_rate") is not None
    cut = SavedCell.of(cell).outputs_cut_at
    if graded and cut is not None:
        return f"not graded: cut at {cut:,} tok"
    parts = []
    if cell.get("quality_accuracy") is not None:
        parts.append(f"acc {cell['quality_accuracy']:.0%}")
    if cell.get("quality_valid_rate") is not None:
        parts.append(f"valid {cell['quality_valid_rate']:.0%}")
    return ", ".join(parts) or MISSING


def load_point(cell: Mapping[str, Any]) -> str | None:
    """A sweep cell's load point label ('c16'), or None when its saved `load` holds none."""
    load = cell.get("load")
    point = load.get("point") if isinstance(load, Mapping) else None
    return point if isinstance(point, str) and point else None


def mode_text(cell: Mapping[str, Any]) -> str:
    """The mode, with its API server count and the load point of a sweep's cell ('server (4 API servers) c16')."""
    mode = _side(cell, "") if "mode" in cell else MISSING
    point = load_point(cell)
    return f"{mode} {point}" if cell.get("sweep") and point else mode


def api_servers(cell: Mapping[str, Any]) -> int | None:
    """The API server count a server cell was run with (`--api-server-count`, which its id carries: 'm-server-api4'
    is 4, so is a sweep's 'm-server-api4-c16'); None for any other cell."""
    found = re.fullmatch(rf"{re.escape(str(cell.get('model')))}-server-api(\d+)(-.+)?", str(cell.get("cell")))
    return int(found[1]) if found else None


def side_label(cell: Mapping[str, Any]) -> str:
    """The mode as the verdicts name one side: 'offline', 'server', 'server (4 API servers)', 'server
    (stream_interval=8)' (`server_setting`)."""
    return _side(cell, server_setting(cell))


def _side(cell: Mapping[str, Any], setting: str) -> str:
    count = api_servers(cell)
    servers = "" if count is None else f"{count} API server{'s' if count != 1 else ''}"
    named = _joined(servers, setting)
    return str(cell.get("mode")) + (f" ({named})" if named else "")
