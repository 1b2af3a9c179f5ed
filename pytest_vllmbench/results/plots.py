"""PNG plots for the report: throughput per cell on each machine, and each cell's TTFT and E2EL CDF.

Rendered with matplotlib's Agg canvas (the `plots` extra), byte for byte the same for the same figures
(no software or date metadata), and only written when the bytes change: no churn in git. Each PNG
carries a digest of what it shows, so an unchanged plot is not even redrawn (nor matplotlib imported).
A load sweep's curve (throughput against latency, one point per load) is drawn per sweep.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_vllmbench.common.files import write_bytes_atomic
from pytest_vllmbench.measure.rounds import central

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DPI = 100
STYLE_VERSION = 2  # bump when a plot's look changes, so every PNG is redrawn once


class PlotsUnavailable(RuntimeError):
    """matplotlib is not installed: the report keeps its tables and says so."""


@dataclass(frozen=True)
class Plot:
    title: str
    path: Path  # where the PNG was written


PlotCell = tuple[str, Mapping[str, Any]]  # (label, the cell's saved figures)


SLUG_MAX = 48  # a file name stays far below the file system's 255 bytes, however long a model's name


def slug(text: str) -> str:
    """Lowercase words joined by '-'; a longer one keeps its first words and a digest of the whole (stable, unique)."""
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"
    if len(words) <= SLUG_MAX:
        return words
    return words[: SLUG_MAX - 9].rstrip("-") + "-" + hashlib.sha256(text.encode()).hexdigest()[:8]


def _wrapped(text: str, width: int) -> str:
    return textwrap.fill(text, width, break_on_hyphens=False)


def cdf_axis_label(cell: Mapping[str, Any]) -> str:
    """What the CDF's time is measured from, by mode: offline queues every request at once."""
    mode = str(cell.get("mode") or "")
    if mode == "offline":
        return "seconds since the request was queued (all at once, offline)"
    return f"seconds since the request was sent ({mode or 'unknown mode'})"


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
    return [
        "throughput",
        machine,
        [(label, cell.get("requests_per_s"), cell.get("output_tokens_per_s")) for label, cell in cells],
    ]


def _cdf_inputs(label: str, cell: Mapping[str, Any]) -> list[Any]:
    return ["latency", label, cell.get("mode"), cell.get("ttft_ms_cdf"), cell.get("e2el_ms_cdf")]


def throughput_png(machine: str, cells: Sequence[PlotCell]) -> bytes:
    """Horizontal bars: requests/s of each cell, output tok/s written beside each bar."""
    labels = [_wrapped(label, 40) for label, _ in cells]
    lines = max(label.count("\n") + 1 for label in labels)
    figure = _figure(10.0, 1.2 + 0.3 * max(lines, 1.5) * len(cells))
    axes = figure.add_subplot()
    rates = [float(cell.get("requests_per_s") or 0.0) for _, cell in cells]
    bars = axes.barh(range(len(cells)), rates, color="#4c72b0")
    axes.set_yticks(range(len(cells)), labels)
    axes.invert_yaxis()
    axes.set_xlabel("requests/s (higher is better)")
    axes.set_title(_wrapped(f"Throughput: {machine}", 80), fontsize=10)
    tokens = [cell.get("output_tokens_per_s") for _, cell in cells]
    axes.bar_label(
        bars,
        [f" {r:,.2f} req/s" + (f", {t:,.0f} out tok/s" if t else "") for r, t in zip(rates, tokens, strict=True)],
        fontsize=8,
    )
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
    axes.set_xlabel(cdf_axis_label(cell))
    axes.set_ylabel("share of requests")
    axes.set_ylim(0, 1)
    axes.set_xlim(left=0)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left")
    axes.set_title(_wrapped(f"Latency CDF: {label}", 60), fontsize=10)
    return png_bytes(figure, inputs_digest(*_cdf_inputs(label, cell)))


SweepPoint = tuple[str, Mapping[str, Any]]  # (load point label, the point's saved figures)


def _sweep_inputs(title: str, points: Sequence[SweepPoint], knee: str | None) -> list[Any]:
    return [
        "sweep",
        title,
        knee,
        [
            (
                label,
                central(cell, "requests_per_s"),
                cell.get("output_tokens_per_s"),
                cell.get("ttft_ms_p50"),
                cell.get("ttft_ms_p99"),
                cell.get("e2el_ms_p50"),
                cell.get("e2el_ms_p99"),
            )
            for label, cell in points
        ],
    ]


def sweep_png(title: str, points: Sequence[SweepPoint], knee: str | None = None) -> bytes:
    """Latency (TTFT and E2EL, p50 solid, p99 dashed; the last round's) against the throughput each load point
    reached (the mean over rounds when there were several)."""
    figure = _figure(7.0, 4.2)
    axes = figure.add_subplot()
    rates = [central(cell, "requests_per_s") or 0.0 for _, cell in points]  # the rounds' mean, as the table
    for metric, name, color in (("ttft", "TTFT", "#4c72b0"), ("e2el", "E2EL", "#dd8452")):
        for stat, style in (("p50", "-"), ("p99", "--")):
            values = [cell.get(f"{metric}_ms_{stat}") for _, cell in points]
            shown = [(rate, value / 1000.0) for rate, value in zip(rates, values, strict=True) if value is not None]
            if shown:
                axes.plot(*zip(*shown, strict=True), style, marker="o", color=color, label=f"{name} {stat}")
    for (label, cell), rate in zip(points, rates, strict=True):
        top = cell.get("e2el_ms_p50") or cell.get("ttft_ms_p50")
        if top is not None:
            axes.annotate(
                label + (" (knee)" if label == knee else ""),
                (rate, top / 1000.0),
                fontsize=8,
                textcoords="offset points",
                xytext=(4, 6),
                fontweight="bold" if label == knee else "normal",
            )
    axes.set_xlabel("requests/s reached (higher is better)")
    axes.set_ylabel("seconds (lower is better)")
    axes.set_ylim(bottom=0)
    axes.set_xlim(left=0, right=max(rates + [1e-9]) * 1.2)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize=8)
    axes.set_title(_wrapped(f"Load sweep: {title}", 70), fontsize=10)
    return png_bytes(figure, inputs_digest(*_sweep_inputs(title, points, knee)))


def render_sweeps(sweeps: Mapping[str, tuple[Sequence[SweepPoint], str | None]], folder: Path) -> list[Plot]:
    """One curve per sweep (title -> its points, lightest first, and the knee's label if any)."""
    written = []
    for title, (points, knee) in sweeps.items():
        path = folder / f"sweep-{slug(title)}.png"
        if not _up_to_date(path, _sweep_inputs(title, points, knee)):
            write_png(path, sweep_png(title, points, knee))
        written.append(Plot(f"Load sweep, {title}", path))
    return written


def remove_unreferenced(folder: Path, kept: Sequence[Plot]) -> list[Path]:
    """Delete the PNGs in `folder` this tool drew (they carry its stamp) that the report no longer shows."""
    keep = {plot.path.name for plot in kept}
    removed = []
    for path in sorted(folder.glob("*.png")) if folder.is_dir() else []:
        if path.name not in keep and b"vllmbench-inputs " in path.read_bytes():
            path.unlink()
            removed.append(path)
    return removed


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
                path = folder / f"latency-{slug(f'{machine} {label}')}.png"
                if not _up_to_date(path, _cdf_inputs(label, cell)):
                    write_png(path, latency_cdf_png(label, cell))
                written.append(Plot(f"Latency CDF, {label}, {machine}", path))
    return written
