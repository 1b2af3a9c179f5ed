"""`vllmbench report` over many saved runs: how long regenerating BENCHMARKS.md takes (goal: 1,000 files <= 2 s).

Writes N pytest-benchmark-shaped run files (two cells each, spread over three machines) into a temp
storage, then times the `vllmbench report` command on it, best of 3. Usage:
    .venv/bin/python benchmarks/scripts/report_scale.py [--runs 1000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MACHINES = [("cpu-box", []), ("h200", ["NVIDIA H200"]), ("h200x2", ["NVIDIA H200", "NVIDIA H200"])]


def run_file(index: int, gpus: list[str]) -> dict:
    cells = []
    for mode, rate in (("offline", 40.0), ("server", 38.0)):
        rate = rate * (1 + (index % 7) / 100)
        cells.append(
            {
                "name": f"test_batch[gemma-12b-{mode}]",
                "stats": {"mean": 25.0},
                "extra_info": {
                    "vllmbench_schema": 1,
                    "cell": f"gemma-12b-{mode}",
                    "model": "gemma-12b",
                    "mode": mode,
                    "params_b": 11.8,
                    "requests_per_s": rate,
                    "output_tokens_per_s": rate * 128,
                    "projected_hours": 170000 / rate / 3600,
                    "n_requests": 1000,
                    "n_failed": 0,
                    "ttft_ms_p50": 2400.0,
                    "ttft_ms_p99": 3400.0,
                    "gpus": gpus,
                    "dataset": {"path": "data/batch_5k.jsonl", "sha256": "0" * 64},
                    "engine": {"name": "vllm", "version": "0.26.0", "platform": "cuda"},
                },
            }
        )
    return {
        "machine_info": {"vllmbench": {"cpu_name": "Xeon", "gpus": gpus}, "cpu": {"count": 16}},
        "datetime": f"2026-11-{1 + index % 28:02d}T{index % 24:02d}:00:00",
        "benchmarks": cells,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    args = parser.parse_args()
    vllmbench = str(Path(sys.executable).with_name("vllmbench"))
    with tempfile.TemporaryDirectory() as folder:
        storage = Path(folder) / ".benchmarks"
        for index in range(args.runs):
            machine, gpus = MACHINES[index % len(MACHINES)]
            path = storage / machine / f"{index + 1:04d}_run.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(run_file(index, gpus)))
        walls = []
        for _ in range(3):
            started = time.perf_counter()
            subprocess.run(
                [vllmbench, "report", "--storage", str(storage), "--out", f"{folder}/B.md"],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            walls.append(time.perf_counter() - started)
        lines = len(Path(folder, "B.md").read_text().splitlines())
    print(
        json.dumps(
            {
                "runs": args.runs,
                "report_lines": lines,
                "best_s": round(min(walls), 3),
                "walls_s": [round(w, 3) for w in walls],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
