"""Does live progress change what is measured? The same offline batch with and without the progress bar.

Loads the embedded model once (vllm.LLM, as an offline cell does), then runs the same requests in
alternating trials: without progress, and with the cell's progress fed by vLLM's own hook and drawn as
plain log lines (the CI path; on a terminal only the redraw differs). Prints req/s of each trial, the
median of each side and the ratio with / without: within the trials' own spread means noise only.
Usage (under the engine lock on a shared machine):
    .venv/bin/python benchmarks/scripts/progress_overhead.py [--limit 32] [--max-tokens 32] [--trials 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from pytest_vllmbench.config.registry import load_registry
from pytest_vllmbench.engines import embedded_model as embedded
from pytest_vllmbench.engines.base import SamplingOverrides
from pytest_vllmbench.engines.vllm_cli import vllm_platform
from pytest_vllmbench.measure.progress import CellProgress
from pytest_vllmbench.workload.batch import read_batch

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()

    from pytest_vllmbench.engines.offline import OfflineEngine

    registry = load_registry()
    spec = registry.resolve("gemma-270m")
    engine = OfflineEngine(str(embedded.ensure_prepared("gemma-270m")), registry.engine_args_for(spec, vllm_platform()))
    requests = read_batch(REPO / "data" / "batch_5k.jsonl", limit=args.limit)
    sampling = SamplingOverrides(max_tokens=args.max_tokens, ignore_eos=True)  # same work in every trial
    try:
        engine.run(requests[:4], sampling)  # warm-up, untimed
        rates: dict[str, list[float]] = {"without": [], "with": []}
        for trial in range(args.trials):
            for side in ("without", "with") if trial % 2 == 0 else ("with", "without"):  # no order bias
                bar = (
                    CellProgress("gemma-270m-offline", len(requests), sys.stderr, tty=False, interval_s=1.0)
                    if side == "with"
                    else None
                )
                started = time.perf_counter()
                records = engine.run(requests, sampling, bar)
                wall = time.perf_counter() - started
                if bar is not None:
                    bar.close()
                assert all(r.ok for r in records)
                rates[side].append(len(records) / wall)
                print(f"trial {trial + 1} {side} progress: {rates[side][-1]:.3f} req/s", file=sys.stderr, flush=True)
    finally:
        engine.close()
    medians = {side: statistics.median(values) for side, values in rates.items()}
    print(
        json.dumps(
            {
                "requests": len(requests),
                "max_tokens": args.max_tokens,
                "trials": args.trials,
                "req_per_s": {side: [round(v, 3) for v in values] for side, values in rates.items()},
                "median_req_per_s": {side: round(v, 3) for side, v in medians.items()},
                "ratio_with_over_without": round(medians["with"] / medians["without"], 3),
                "spread_without": round((max(rates["without"]) - min(rates["without"])) / medians["without"], 3),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
