"""The report's server-parity rows, from the JSON `benchmarks/scripts/server_parity.sh` writes (parity_summary.py).

The procedure runs the owned-server cell, the endpoint cell against a hand-started `vllm serve` and `vllm bench
serve` on one server's args and the same requests, several times each; a ratio holds when 1.0 lies within the
spread of its runs or its mean is at least `PARITY_TARGET`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PARITY_TARGET = 0.97
METHODS = {
    "owned": "owned-server cell",
    "endpoint": "endpoint cell (hand-started `vllm serve`)",
    "bench": "`vllm bench serve`",
}
RATIOS = {
    "ratio_owned_vs_bench": "owned-server cell / vllm bench serve",
    "ratio_endpoint_vs_bench": "endpoint cell / vllm bench serve",
}


def _num(value: Any, digits: int = 1) -> str:
    return "-" if not isinstance(value, (int, float)) else f"{value:,.{digits}f}"


def ratio_holds(ratio: Mapping[str, Any]) -> bool:
    """True when the ratio is within its spread of 1.0, or its mean reaches the target."""
    mean, low, high = ratio.get("mean"), ratio.get("range_low"), ratio.get("range_high")
    if not isinstance(mean, (int, float)):
        return False
    within = isinstance(low, (int, float)) and isinstance(high, (int, float)) and low <= 1.0 <= high
    return within or mean >= PARITY_TARGET


def parity_section(summary: Mapping[str, Any], source: str) -> list[str]:
    """Markdown lines: one row per method (runs, mean req/s, 95 % interval), one per ratio (mean, the range
    over runs, whether it holds) and the host load each method ran under."""
    methods: Mapping[str, Any] = summary.get("methods") or {}
    if not methods:
        return [f"No server-parity runs in `{source}`."]
    lines = [
        f"Server parity from `{source}`:",
        "",
        "| Method | Runs | req/s mean | 95 % interval |",
        "|---|---|---|---|",
    ]
    for key, label in METHODS.items():
        if (found := methods.get(key)) is not None:
            interval = f"{_num(found.get('ci95_low'))} to {_num(found.get('ci95_high'))}"
            lines.append(f"| {label} | {found.get('n', '-')} | {_num(found.get('mean'))} | {interval} |")
    lines += ["", "| Ratio | Mean | Range over runs | Holds |", "|---|---|---|---|"]
    for key, label in RATIOS.items():
        if (ratio := summary.get(key)) is not None:
            spread = f"{_num(ratio.get('range_low'), 3)} to {_num(ratio.get('range_high'), 3)}"
            holds = "yes" if ratio_holds(ratio) else "no"
            lines.append(f"| {label} | {_num(ratio.get('mean'), 3)} | {spread} | {holds} |")
    loads: Mapping[str, Any] = summary.get("host_load") or {}
    if loads:
        lines += [
            "",
            "| Run | GPU busy % | CPU % client | CPU % API server | CPU % engine core |",
            "|---|---|---|---|---|",
        ]
        for run, load in sorted(loads.items()):
            lines.append(
                f"| {run} | {_num(load.get('gpu_busy_pct'))} | {_num(load.get('cpu_client_pct'))} | "
                f"{_num(load.get('cpu_api-server_pct'))} | {_num(load.get('cpu_engine-core_pct'))} |"
            )
    return lines
