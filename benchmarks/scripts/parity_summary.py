"""Reads one server_parity.sh folder and prints its JSON summary: req/s per run of the owned-server cell, the endpoint
cell and `vllm bench serve`, each method's mean and 95 % interval, the two ratios (owned / bench, endpoint / bench)
with their spread, and per run the CPU % of client / API server / engine core and the GPU busy % (host_load.py).
A PART=clients folder gives instead each client process count's rounds (`clientsK`) and `ratio_clientsK_vs_clients1`."""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any


def spread(values: list[float]) -> dict[str, Any]:
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    half = 0.0
    if len(values) > 1:
        from scipy import stats

        half = float(stats.t.ppf(0.975, len(values) - 1)) * sd / len(values) ** 0.5
    return {
        "n": len(values),
        "values": [round(v, 2) for v in values],
        "mean": round(mean, 2),
        "stddev": round(sd, 2),
        "ci95_low": round(mean - half, 2),
        "ci95_high": round(mean + half, 2),
    }


def busy_window(series: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over the samples where the GPU was busy (> 5 %): the timed part, not the start or the tokenizer."""
    busy = [s for s in series if (s.get("gpu_busy_pct") or 0) > 5] or series
    out: dict[str, Any] = {"samples": len(busy)}
    if busy and busy[0].get("gpu_busy_pct") is not None:
        out["gpu_busy_pct"] = round(statistics.fmean(s["gpu_busy_pct"] for s in busy), 1)
    for kind in ("client", "api-server", "engine-core"):
        out[f"cpu_{kind}_pct"] = round(statistics.fmean(s["cpu"].get(kind, 0.0) for s in busy), 1) if busy else None
        out[f"max_one_{kind}_pct"] = (
            round(statistics.fmean(s["max_one"].get(kind, 0.0) for s in busy), 1) if busy else None
        )
    return out


def cell_rates(path: Path) -> list[float]:
    data = json.loads(path.read_text())
    rates: list[float] = []
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        rounds = info.get("rounds")
        if rounds:
            rates += [r["requests_per_s"] for r in rounds if r.get("requests_per_s")]
        elif info.get("requests_per_s"):
            rates.append(info["requests_per_s"])
    return rates


def main(folder: Path) -> dict[str, Any]:
    runs: dict[str, list[float]] = {"owned": [], "endpoint": [], "bench": []}
    loads: dict[str, Any] = {}
    for path in sorted(folder.glob("bench-*.json")):
        runs["bench"].append(json.loads(path.read_text())["request_throughput"])
    for path in sorted(folder.glob("*_parity-endpoint-*.json")):
        runs["endpoint"] += cell_rates(path)
    for path in sorted(folder.glob("*_parity-owned*.json")):
        runs["owned"] += cell_rates(path)
    for path in sorted(folder.glob("*_parity-*-clients*-*.json")):  # PART=clients: CARD-clientsK-PAIR
        found = re.search(r"-clients(\d+)-\d+\.json$", path.name)
        if found:
            runs.setdefault(f"clients{found[1]}", []).extend(cell_rates(path))
    for path in sorted(folder.glob("series-*.json")):
        loads[path.stem.removeprefix("series-")] = busy_window(json.loads(path.read_text())["series"])
    summary: dict[str, Any] = {"methods": {k: spread(v) for k, v in runs.items() if v}, "host_load": loads}
    pairs = [(name, "bench") for name in ("owned", "endpoint")]
    pairs += [(name, "clients1") for name in runs if name.startswith("clients") and name != "clients1"]
    for name, base in pairs:
        if runs[name] and runs.get(base):
            summary[f"ratio_{name}_vs_{base}"] = ratio(runs[name], runs[base])
    return summary


def ratio(ours: list[float], base: list[float]) -> dict[str, float]:
    """Mean over mean, and the widest range the runs allow: min(ours)/max(base) .. max(ours)/min(base)."""
    return {
        "mean": round(statistics.fmean(ours) / statistics.fmean(base), 3),
        "range_low": round(min(ours) / max(base), 3),
        "range_high": round(max(ours) / min(base), 3),
    }


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1])), indent=1))
