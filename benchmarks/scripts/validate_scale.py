"""`vllmbench validate` on a full-size job vs a bare json.loads loop over the same file.

Writes a synthetic batch of N lines (default 170,000, the seed's job), then times, in separate
processes, `vllmbench validate FILE` and a loop that only runs json.loads on every line; prints both
wall times, their ratio (goal <= 3) and validate's peak RSS (goal <= 500 MB). Usage:
    .venv/bin/python benchmarks/scripts/validate_scale.py [--n 170000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BARE_LOOP = "import json, sys\nfor line in open(sys.argv[1], 'rb'):\n    json.loads(line)\n"


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak_kb, before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=170_000)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    vllmbench = str(Path(sys.executable).with_name("vllmbench"))
    with tempfile.TemporaryDirectory() as folder:
        batch = Path(folder) / "batch.jsonl"
        started = time.perf_counter()
        subprocess.run(
            [vllmbench, "make-dataset", "--n", str(args.n), "--seed", "1", "--out", str(batch)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        made = time.perf_counter() - started
        bare = [timed([sys.executable, "-c", BARE_LOOP, str(batch)]) for _ in range(args.trials)]
        ours = [timed([vllmbench, "validate", str(batch)]) for _ in range(args.trials)]
        size_mb = batch.stat().st_size / 1e6
    figures = {
        "lines": args.n,
        "file_mb": round(size_mb, 1),
        "make_dataset_s": round(made, 2),
        "json_loads_loop_s": round(min(w for w, _ in bare), 3),
        "validate_s": round(min(w for w, _ in ours), 3),
        "validate_peak_rss_mb": round(max(m for _, m in ours), 1),
    }
    figures["ratio_validate_over_loop"] = round(figures["validate_s"] / figures["json_loads_loop_s"], 2)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
