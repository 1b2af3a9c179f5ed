"""The three loop times of issue 28 from fresh clones: `make bench`, `make test` and `.ci/run`, each with its parts.

    python benchmarks/scripts/loop_times.py [--only bench,test,ci] [--runs 2] [--work /tmp/loop-times]

Each run clones this repository's HEAD afresh (its own .venv, built by make) and gets an empty model cache
(VLLMBENCH_CACHE), so the venv, the install and the model preparation are timed as on a new machine; the package
downloads in uv's or pip's cache are reused as they are. A part is one command make runs (its start to the next
command's start: make runs them one after another), so the parts of a target add up to its total. `make bench`
also lists its cells' engine load and measured run (from the saved run), `make test` and `.ci/run` pytest's
closing lines. The load average before and after each run is printed beside it: on a shared machine the figures
are only as quiet as the machine was.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COMMANDS = {"bench": ["make", "bench"], "test": ["make", "test"], "ci": ["bash", ".ci/run"]}
DRY_RUN = {"bench": ["bench"], "test": ["test"], "ci": ["test", "test-engine"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="bench,test,ci", help="comma-separated: bench, test, ci")
    parser.add_argument("--runs", type=int, default=1, help="fresh clones per target (default 1)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/loop-times"), help="where the clones go")
    args = parser.parse_args()
    targets = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(targets) - set(COMMANDS))
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}: pick from {', '.join(COMMANDS)}")
    args.work.mkdir(parents=True, exist_ok=True)
    failed = 0
    for target in targets:
        for run in range(1, args.runs + 1):
            failed += time_one(target, args.work / f"{target}-{run}-{int(time.time())}")
    return 1 if failed else 0


def time_one(target: str, place: Path) -> int:
    clone, cache, log_path = place / "clone", place / "model-cache", place / "log.txt"
    place.mkdir(parents=True)
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    env = {**os.environ, "VLLMBENCH_CACHE": str(cache)}
    steps = set()
    for make_target in DRY_RUN[target]:
        dry = subprocess.run(["make", "-n", make_target], cwd=clone, env=env, capture_output=True, text=True)
        steps.update(line.strip() for line in dry.stdout.splitlines() if line.strip())
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    marks: list[tuple[float, str]] = []
    tail: list[str] = []
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            COMMANDS[target], cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            now = time.perf_counter() - started
            log.write(f"{now:8.1f} {line}")
            log.flush()  # the log can be followed while the target runs
            if line.strip() in steps:
                marks.append((now, line.strip()))
            tail = (tail + [line.rstrip()])[-40:]
        code = proc.wait()
    total = time.perf_counter() - started
    print(
        f"\n{' '.join(COMMANDS[target])}: {total:.1f} s, exit {code}, load {load_before:.2f} -> {os.getloadavg()[0]:.2f}"
    )
    print(f"  clone {clone}, log {log_path}")
    for (at, command), (until, _) in zip(marks, marks[1:] + [(total, "")], strict=True):
        print(f"  {at:7.1f} + {until - at:6.1f} s  {command[:110]}")
    if target == "bench":
        print_cells(clone)
    for line in tail:
        if line.startswith("=") and (" passed" in line or " failed" in line or " error" in line):
            print(f"  {line.strip('= ')}")
    return 0 if code == 0 else 1


def print_cells(clone: Path) -> None:
    saved = sorted(clone.glob(".benchmarks/*/*_bench.json"), key=lambda path: path.stat().st_mtime)
    if not saved:
        print("  no saved run")
        return
    for bench in json.loads(saved[-1].read_text())["benchmarks"]:
        extra = bench["extra_info"]
        overlapped = " (overlapped: --start-ahead)" if extra.get("load_overlapped") else ""
        print(
            f"  cell {extra['cell']}: engine load {extra['load_s']:.1f} s{overlapped}, {extra['n_requests']} requests "
            f"in {extra['wall_s']:.1f} s, {extra['requests_per_s']:.2f} req/s"
        )


if __name__ == "__main__":
    sys.exit(main())
