"""PNG plots for the report: throughput per cell on each machine, and each cell's TTFT and E2EL CDF.

Rendered with matplotlib's Agg canvas (the `plots` extra), byte for byte the same for the same figures
(no software or date metadata), and only written when the bytes change: no churn in git. A file of a plot's name
that this tool did not draw is never written over. Each PNG
carries a digest of what it shows, so an unchanged plot is not even redrawn (nor matplotlib imported).
A load sweep's curve (throughput against latency, one point per load) is drawn per sweep.
Every figure is laid out by matplotlib's constrained layout and long titles and labels are wrapped, so no text
leaves the image. File names: plot_names.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from pytest_vllmbench.common.files import read_plain_bytes, write_bytes_atomic
from pytest_vllmbench.measure.rounds import central, plus_minus, stat
from pytest_vllmbench.results import plot_names

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DPI = 100
STYLE_VERSION = 4  # bump when a plot's look changes, so every PNG is redrawn once
STAMP = b"vllmbench-inputs "  # in every PNG this tool writes: the report deletes only files that carry it


class PlotsUnavailable(RuntimeError):
    """matplotlib is not installed: the report keeps its tables and says so."""


class PlotRefused(RuntimeError):
    """A plot's file is there and is not a PNG this tool drew (no stamp, a symlink, a FIFO): never written over."""


@dataclass(frozen=True)
class Plot:
    title: str
    path: Path  # where the PNG goes
    data: bytes | None = None  # the PNG to write; None when the file already shows these figures


PlotCell = tuple[str, Mapping[str, Any]]  # (label, the cell's saved figures)
SweepPoint = tuple[str, Mapping[str, Any]]  # (load point label, the point's saved figures)
SweepCurve = tuple[Sequence[SweepPoint], str | None, str]  # (points lightest first, the knee's label, the machine)

QUEUED_AT_ONCE = {"offline", "ray"}  # every request enters the engine's queue at the start, none is "sent"
SAVED_PERCENTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99))  # what runs saved before they saved CDFs


def _wrapped(text: str, width: int) -> str:
    return textwrap.fill(text, width, break_on_hyphens=False)


def cdf_axis_label(cell: Mapping[str, Any]) -> str:
    """What the CDF's time is measured from, by mode: offline and ray queue every request at once."""
    mode = str(cell.get("mode") or "")
    if mode in QUEUED_AT_ONCE:
        return f"seconds since the request was queued (all at once, {mode})"
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
    return f"{STAMP.decode()}{digest}"


def png_bytes(figure: Any, digest: str = "") -> bytes:
    buffer = io.BytesIO()  # no software version, no date: the same figures give the same bytes
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None, "Description": _stamp(digest)})
    return buffer.getvalue()


def _rate(cell: Mapping[str, Any]) -> float:
    """The cell's one req/s, as the tables show it: the rounds' mean when it ran rounds."""
    return central(cell, "requests_per_s") or 0.0


def _rate_text(cell: Mapping[str, Any]) -> str:
    text = plus_minus(cell, "requests_per_s") or f"{_rate(cell):,.2f}"
    tokens = central(cell, "output_tokens_per_s")
    return f" {text} req/s" + (f", {tokens:,.0f} out tok/s" if tokens else "")


def _half_width(cell: Mapping[str, Any]) -> float:
    found = stat(cell, "requests_per_s")
    return float(found["ci95_half"]) if found else 0.0


def _throughput_inputs(machine: str, cells: Sequence[PlotCell]) -> list[Any]:
    return ["throughput", machine, [(label, _rate_text(cell), _half_width(cell)) for label, cell in cells]]


def _rounds(cell: Mapping[str, Any]) -> int:
    rounds = cell.get("rounds")
    return len(rounds) if isinstance(rounds, list) else 1


def _cdf_inputs(label: str, cell: Mapping[str, Any]) -> list[Any]:
    keys = ("cdf", *(name for name, _ in SAVED_PERCENTILES))
    saved = {f"{metric}_{key}": cell.get(f"{metric}_ms_{key}") for metric in ("ttft", "e2el") for key in keys}
    return ["latency", label, cell.get("mode"), _rounds(cell), saved]


def throughput_png(machine: str, cells: Sequence[PlotCell]) -> bytes:
    """Horizontal bars: requests/s of each cell (the rounds' mean, with its 95 % interval), output tok/s beside."""
    labels = [_wrapped(label, 40) for label, _ in cells]
    lines = sum(max(label.count("\n") + 1, 1.5) for label in labels)
    figure = _figure(10.0, 1.3 + 0.3 * lines)
    axes = figure.add_subplot()
    rates = [_rate(cell) for _, cell in cells]
    halves = [_half_width(cell) for _, cell in cells]
    axes.barh(range(len(cells)), rates, color="#4c72b0")
    ranged = [(rate, row, half) for row, (rate, half) in enumerate(zip(rates, halves, strict=True)) if half]
    if ranged:
        rate_at, row_at, half_at = zip(*ranged, strict=True)
        axes.errorbar(rate_at, row_at, xerr=half_at, fmt="none", ecolor="black", capsize=3, linewidth=1)
    for row, ((_, cell), rate, half) in enumerate(zip(cells, rates, halves, strict=True)):
        axes.annotate(
            _rate_text(cell), (rate + half, row), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8
        )
    axes.set_yticks(range(len(cells)), labels)
    axes.invert_yaxis()
    axes.set_xlabel("requests/s (higher is better; whiskers: the 95 % interval over rounds)")
    axes.set_title(_wrapped(f"Throughput: {machine}", 80), fontsize=10)
    axes.set_xlim(0, max([r + h for r, h in zip(rates, halves, strict=True)] + [1e-9]) * 2.0)  # room for labels
    return png_bytes(figure, inputs_digest(*_throughput_inputs(machine, cells)))


def _distribution(cell: Mapping[str, Any], metric: str) -> tuple[list[float], list[float], bool]:
    """(seconds, share of requests, whether it is the full 101-point CDF) or the few percentiles the run saved."""
    points = cell.get(f"{metric}_ms_cdf")
    if points:
        return [p / 1000.0 for p in points], [i / (len(points) - 1) for i in range(len(points))], True
    saved = [(cell.get(f"{metric}_ms_{key}"), share) for key, share in SAVED_PERCENTILES]
    known = [(float(value) / 1000.0, share) for value, share in saved if isinstance(value, int | float)]
    return [value for value, _ in known], [share for _, share in known], False


def has_cdf(cell: Mapping[str, Any]) -> bool:
    """Whether the cell saved its full TTFT or E2EL distribution (101 percentiles)."""
    return bool(cell.get("ttft_ms_cdf") or cell.get("e2el_ms_cdf"))


def has_latency(cell: Mapping[str, Any]) -> bool:
    """Whether a CDF can be drawn: the full distribution, or at least the saved percentiles of older runs."""
    return any(_distribution(cell, metric)[0] for metric in ("ttft", "e2el"))


def latency_cdf_png(label: str, cell: Mapping[str, Any]) -> bytes:
    """TTFT and E2EL as cumulative distributions, from the 101 saved percentiles of each; a run that saved none
    gets its p50, p90 and p99 as points, and the title says so."""
    figure = _figure(6.0, 3.8)
    axes = figure.add_subplot()
    right, partial = 0.0, False
    for metric, name in (("ttft", "TTFT"), ("e2el", "E2EL")):
        seconds, shares, full = _distribution(cell, metric)
        if not seconds:
            continue
        right, partial = max(right, *seconds), partial or not full
        if full:
            axes.plot(seconds, shares, label=name, drawstyle="steps-post")
        else:
            axes.plot(seconds, shares, ":", marker="o", label=f"{name} p50, p90, p99")
    axes.set_xlabel(_wrapped(cdf_axis_label(cell), 70))
    axes.set_ylabel("share of requests")
    axes.set_ylim(0, 1.02)
    axes.set_xlim(0, max(right, 1e-3) * 1.05)  # the last step stays clear of the frame
    axes.grid(alpha=0.3)
    figure.legend(loc="outside right upper", fontsize=8)  # beside the axes: never over a curve
    notes = [f"last of {_rounds(cell)} rounds"] if _rounds(cell) > 1 else []
    notes += ["only p50, p90 and p99 saved"] if partial else []
    title = f"Latency CDF: {label}" + (f" ({'; '.join(notes)})" if notes else "")
    axes.set_title(_wrapped(title, 60), fontsize=10)
    return png_bytes(figure, inputs_digest(*_cdf_inputs(label, cell)))


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
        for stat_name, style in (("p50", "-"), ("p99", "--")):
            values = [cell.get(f"{metric}_ms_{stat_name}") for _, cell in points]
            shown = [(rate, value / 1000.0) for rate, value in zip(rates, values, strict=True) if value is not None]
            if shown:
                axes.plot(*zip(*shown, strict=True), style, marker="o", color=color, label=f"{name} {stat_name}")
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
    figure.legend(loc="outside right upper", fontsize=8)
    axes.set_title(_wrapped(f"Load sweep: {title}", 70), fontsize=10)
    return png_bytes(figure, inputs_digest(*_sweep_inputs(title, points, knee)))


def _unique(name: str, used: set[str], identity: Any) -> str:
    """`name`, or when another plot of this report already has it, the name with a digest of `identity`."""
    chosen = plot_names.with_digest(name, identity) if name in used else name
    used.add(chosen)
    return chosen


def render_sweeps(sweeps: Mapping[str, SweepCurve], folder: Path) -> list[Plot]:
    """One curve per sweep (title -> its points, lightest first, the knee's label if any, and its machine), drawn
    where its file does not show it yet (save_plots writes them)."""
    drawn: list[Plot] = []
    used: set[str] = set()
    for title, (points, knee, machine) in sweeps.items():
        name = plot_names.sweep_name(machine, [cell for _, cell in points])
        path = folder / _unique(name, used, title)
        inputs = _sweep_inputs(title, points, knee)
        drawn.append(_drawn(f"Load sweep, {title}", path, inputs, partial(sweep_png, title, points, knee)))
    return drawn


def save_plots(folder: Path, plots: Sequence[Plot]) -> None:
    """Write the plots drawn anew, atomically, then delete this tool's PNGs in `folder` that none of them is."""
    for plot in plots:
        if plot.data is not None:
            write_bytes_atomic(plot.path, plot.data)
    _remove_unreferenced(folder, plots)


def _remove_unreferenced(folder: Path, kept: Sequence[Plot]) -> None:
    """Delete the PNGs in `folder` this tool drew (they carry its stamp) that the report no longer shows."""
    keep = {plot.path.name for plot in kept}
    for path in sorted(folder.glob("*.png")) if folder.is_dir() else []:
        if path.name not in keep and _own_png(path):
            path.unlink()


MAX_PNG_BYTES = 64 * 2**20  # far over any plot this tool draws


def _existing_bytes(path: Path) -> bytes | None:
    """The file's bytes, None when there is none; OSError for a symlink, a FIFO (never read: it would block), a
    device, a folder, a file too large to be a plot or one that cannot be read."""
    if path.is_symlink():
        raise OSError("a symlink")
    try:
        return read_plain_bytes(path, MAX_PNG_BYTES)
    except FileNotFoundError:
        return None


def _own_png(path: Path) -> bytes | None:
    """The bytes of a PNG this tool drew at `path`, or None: absent, or anything else."""
    try:
        data = _existing_bytes(path)
    except OSError:
        return None
    return data if data is not None and STAMP in data else None


def _drawn(title: str, path: Path, inputs: list[Any], draw: Callable[[], bytes]) -> Plot:
    """The plot, drawn unless its file already shows these inputs; PlotRefused when that file is not this tool's."""
    try:
        existing = _existing_bytes(path)
    except OSError as exc:
        raise PlotRefused(f"{path} cannot be a plot this tool drew ({exc}); not overwritten") from None
    if existing is not None and STAMP not in existing:
        raise PlotRefused(
            f"{path} is not a plot this tool drew (a file of its name, without its stamp); not overwritten"
        )
    if existing is not None and _stamp(inputs_digest(*inputs)).encode() in existing:
        return Plot(title, path)
    return Plot(title, path, draw())


def render_plots(machines: Mapping[str, Sequence[PlotCell]], folder: Path) -> list[Plot]:
    """One throughput chart per machine and one latency CDF per cell that saved its latencies, each drawn where its
    file does not show it yet (save_plots writes them)."""
    drawn: list[Plot] = []
    used: set[str] = set()
    for machine, cells in machines.items():
        ran = [(label, cell) for label, cell in cells if _rate(cell)]
        if ran:
            path = folder / _unique(plot_names.throughput_name(machine), used, machine)
            inputs = _throughput_inputs(machine, ran)
            drawn.append(_drawn(f"Throughput, {machine}", path, inputs, partial(throughput_png, machine, ran)))
        for label, cell in ran:
            if has_latency(cell):
                path = folder / _unique(plot_names.cdf_name(machine, cell), used, [machine, label, cell.get("dataset")])
                title = f"Latency CDF, {label}, {machine}"
                drawn.append(_drawn(title, path, _cdf_inputs(label, cell), partial(latency_cdf_png, label, cell)))
    return drawn
