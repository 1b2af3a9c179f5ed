"""Does a cell's memory stay flat as the job grows? One endpoint cell per size against a zero-work stub.

The seed's 5K sample (data/batch_5k.jsonl) is repeated, each copy with its own custom_ids, into a temporary batch
file of each size; each cell runs in a fresh process (the whole session path: validation, the streaming client,
the spilled records, the summary, the quality check) and reports its peak RSS. Prints each size's peak and rate
and the ratio of the largest size's peak to the smallest's (goal: within 1.2). Usage:
    .venv/bin/python benchmarks/scripts/memory_scale.py [--sizes 170000,1700000] [--chunks 8] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "batch_5k.jsonl"
STUB = Path(__file__).with_name("sse_stub.py")
SERVED = "stub"


def write_repeated(source: Path, size: int, target: Path) -> Path:
    """`size` lines: `source`'s lines over and over, copy k's custom_ids suffixed `-k` so each is unique."""
    lines = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    with target.open("w", encoding="utf-8") as handle:
        for index in range(size):
            line = lines[index % len(lines)]
            copy = index // len(lines)
            handle.write(json.dumps({**line, "custom_id": f"{line['custom_id']}-{copy}"}) + "\n")
    return target


def run_cell(batch: Path, base_url: str, concurrency: str | None) -> dict[str, Any]:
    """One endpoint cell through the session, as the plugin runs it; its figures and this process's peak RSS."""
    from pytest_vllmbench.config.registry import load_registry
    from pytest_vllmbench.config.settings import merge_sources, resolve
    from pytest_vllmbench.run.session import BenchSession

    options = {"model": [SERVED], "mode": ["endpoint"], "endpoint": base_url, "dataset": str(batch)}
    raw = merge_sources(options | ({"concurrency": concurrency} if concurrency else {}), {}, {})
    session = BenchSession(resolve(raw, ROOT), load_registry(), ROOT)
    [cell] = session.cells
    info = session.run(session.plan(cell), lambda round_: round_()).result.extra_info()
    session.close()
    return {
        "requests": info["n_requests"],
        "failed": info["n_failed"],
        "requests_per_s": info["requests_per_s"],
        "wall_s": info["wall_s"],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


@contextmanager
def stub_server(chunks: int) -> Iterator[str]:
    from pytest_vllmbench.engines.server import free_port

    port = free_port()
    stub = subprocess.Popen(
        [sys.executable, str(STUB), str(port), str(chunks), SERVED],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert stub.stdout is not None and stub.stdout.readline().strip() == "ready", "the stub did not start"
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        os.killpg(stub.pid, signal.SIGTERM)
        stub.wait()


def measure(sizes: list[int], chunks: int, folder: Path, concurrency: str | None = None) -> dict[str, Any]:
    """Each size's figures (a fresh process each) and the ratio of the last size's peak to the first's."""
    rows = []
    with stub_server(chunks) as base_url:
        for size in sizes:
            batch = write_repeated(SAMPLE, size, folder / f"batch_{size}.jsonl")
            child = subprocess.run(
                [sys.executable, __file__, "--child", str(batch), base_url, concurrency or ""],
                capture_output=True,
                text=True,
                check=False,
                env=os.environ | {"PYTHONPATH": str(ROOT)},
            )
            if child.returncode != 0:
                raise RuntimeError(f"the {size}-request cell failed:\n{child.stderr[-3000:]}")
            rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
            batch.unlink()
    return {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "content_chunks": chunks,
        "concurrency": concurrency or "all",
        "cells": rows,
        "peak_ratio": round(rows[-1]["peak_rss_mib"] / rows[0]["peak_rss_mib"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="170000,1700000", help="requests per cell, comma-separated")
    parser.add_argument("--chunks", type=int, default=8, help="content chunks (tokens) the stub streams per answer")
    parser.add_argument("--concurrency", help="requests in flight (default: all, as a cell without --concurrency)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--child", nargs=3, metavar=("BATCH", "URL", "CONCURRENCY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_cell(Path(args.child[0]), args.child[1], args.child[2] or None)))
        return
    sizes = [int(size) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="vllmbench-memory-") as folder:
        figures = measure(sizes, args.chunks, Path(folder), args.concurrency)
    for row in figures["cells"]:
        print(
            f"{row['requests']:>9,} requests: peak RSS {row['peak_rss_mib']:,.1f} MiB, "
            f"{row['requests_per_s']:,.1f} req/s, {row['wall_s']:,.1f} s, {row['failed']} failed"
        )
    print(f"peak ratio {sizes[-1]:,} / {sizes[0]:,}: {figures['peak_ratio']}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
