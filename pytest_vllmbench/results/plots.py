"""PNG plots for the report: throughput per cell on each machine, and each cell's TTFT and E2EL CDF.

Rendered with matplotlib's Agg canvas (the `plots` extra), byte for byte the same for the same figures
(no software or date metadata), and only written when the bytes change: no churn in git. Each PNG
carries a digest of what it shows, so an unchanged plot is not even redrawn (nor matplotlib imported).
Load-sweep curves belong here too, as one more renderer, once sweeps are saved.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_vllmbench.common.files import write_bytes_atomic

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DPI = 100
STYLE_VERSION = 1  # bump when a plot's look changes, so every PNG is redrawn once


class PlotsUnavailable(RuntimeError):
    """matplotlib is not installed: the report keeps its tables and says so."""


@dataclass(frozen=True)
class Plot:
    title: str
    path: Path  # where the PNG was written


PlotCell = tuple[str, Mapping[str, Any]]  # (label, the cell's saved figures)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def _figure(width: float, height: float) -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotsUnavailable("matplotlib is not installed (pip install 'pytest-vllmbench[plots]')") from None
    matplotlib.rcParams["svg.hashsalt"] = "vllmbench"  # no random ids, should anything render as SVG
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def inputs_digest(*parts: Any) -> str:
    text = json.dumps([STYLE_VERSION, *parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _stamp(digest: str) -> str:
    return f"vllmbench-inputs {digest}"


def png_bytes(figure: Any, digest: str = "") -> bytes:
    buffer = io.BytesIO()  # no software version, no date: the same figures give the same bytes
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None, "Description": _stamp(digest)})
    return buffer.getvalue()


def _throughput_inputs(machine: str, cells: Sequence[PlotCell]) -> list[Any]:
    return ["throughput", machine, [(label, cell.get("requests_per_s"), cell.get("output_tokens_per_s"))
                                    for label, cell in cells]]


def _cdf_inputs(label: str, cell: Mapping[str, Any]) -> list[Any]:
    return ["latency", label, cell.get("ttft_ms_cdf"), cell.get("e2el_ms_cdf")]


def throughput_png(machine: str, cells: Sequence[PlotCell]) -> bytes:
    """Horizontal bars: requests/s of each cell, output tok/s written beside each bar."""
    figure = _figure(10.0, 1.2 + 0.45 * len(cells))
    axes = figure.add_subplot()
    labels = [label for label, _ in cells]
    rates = [float(cell.get("requests_per_s") or 0.0) for _, cell in cells]
    bars = axes.barh(range(len(cells)), rates, color="#4c72b0")
    axes.set_yticks(range(len(cells)), labels)
    axes.invert_yaxis()
    axes.set_xlabel("requests/s (higher is better)")
    axes.set_title(f"Throughput: {machine}", fontsize=10)
    tokens = [cell.get("output_tokens_per_s") for _, cell in cells]
    axes.bar_label(bars, [f" {r:,.2f} req/s" + (f", {t:,.0f} out tok/s" if t else "") for r, t in zip(rates, tokens, strict=True)],
                   fontsize=8)
    axes.set_xlim(0, max(rates + [1e-9]) * 2.0)  # room for the labels
    return png_bytes(figure, inputs_digest(*_throughput_inputs(machine, cells)))


def latency_cdf_png(label: str, cell: Mapping[str, Any]) -> bytes:
    """TTFT and E2EL as cumulative distributions, from the 101 saved percentiles of each."""
    figure = _figure(6.0, 3.6)
    axes = figure.add_subplot()
    for metric, name in (("ttft", "TTFT"), ("e2el", "E2EL")):
        points = cell.get(f"{metric}_ms_cdf")
        if points:
            shares = [i / (len(points) - 1) for i in range(len(points))]
            axes.plot([p / 1000.0 for p in points], shares, label=name, drawstyle="steps-post")
    axes.set_xlabel("seconds since the request was sent (queued, offline)")
    axes.set_ylabel("share of requests")
    axes.set_ylim(0, 1)
    axes.set_xlim(left=0)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left")
    axes.set_title(f"Latency CDF: {label}", fontsize=10)
    return png_bytes(figure, inputs_digest(*_cdf_inputs(label, cell)))


def has_cdf(cell: Mapping[str, Any]) -> bool:
    return bool(cell.get("ttft_ms_cdf") or cell.get("e2el_ms_cdf"))


def write_png(path: Path, data: bytes) -> None:
    """Atomically, and not at all when the file already holds these bytes."""
    if path.is_file() and path.read_bytes() == data:
        return
    write_bytes_atomic(path, data)


def _up_to_date(path: Path, inputs: list[Any]) -> bool:
    return path.is_file() and _stamp(inputs_digest(*inputs)).encode() in path.read_bytes()


def render_plots(machines: Mapping[str, Sequence[PlotCell]], folder: Path) -> list[Plot]:
    """One throughput chart per machine and one latency CDF per cell that saved its distributions."""
    written = []
    for machine, cells in machines.items():
        ran = [(label, cell) for label, cell in cells if cell.get("requests_per_s")]
        if ran:
            path = folder / f"throughput-{slug(machine)}.png"
            if not _up_to_date(path, _throughput_inputs(machine, ran)):
                write_png(path, throughput_png(machine, ran))
            written.append(Plot(f"Throughput, {machine}", path))
        for label, cell in ran:
            if has_cdf(cell):
                path = folder / f"latency-{slug(machine)}-{slug(label)}.png"
                if not _up_to_date(path, _cdf_inputs(label, cell)):
                    write_png(path, latency_cdf_png(label, cell))
                written.append(Plot(f"Latency CDF, {label}, {machine}", path))
    return written
