"""How does vLLM's own batch runner compare with an offline cell on the same requests?

Runs the same requests through the offline engine (vllm.LLM, loaded once, one warm-up) and through
`python -m vllm.entrypoints.openai.run_batch` (run-batch mode: a child process per run, timed from the moment
it reads the batch to the moment its output file is written), alternating the two, and prints req/s of each
trial, the medians and the ratio run-batch / offline. Fixed output lengths (`--ignore-eos`) make the work equal.
Usage (under the engine lock on a shared machine):
    .venv/bin/python benchmarks/scripts/run_batch_ratio.py [--limit 32] [--max-tokens 32] [--trials 2]
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
from pytest_vllmbench.workload.batch import read_batch

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--trials", type=int, default=2)
    args = parser.parse_args()

    from pytest_vllmbench.engines.offline import OfflineEngine
    from pytest_vllmbench.engines.run_batch import RunBatchEngine

    registry = load_registry()
    spec = registry.resolve("gemma-270m")
    model = str(embedded.ensure_prepared("gemma-270m"))
    engine_args = registry.engine_args_for(spec, vllm_platform())
    requests = read_batch(REPO / "data" / "batch_5k.jsonl", limit=args.limit)
    sampling = SamplingOverrides(max_tokens=args.max_tokens, ignore_eos=True)
    rates: dict[str, list[float]] = {"offline": [], "run-batch": []}
    runner = RunBatchEngine(model, spec.alias, engine_args)
    loads: list[float] = []
    for trial in range(args.trials):
        # one engine in memory at a time: the offline engine is loaded and closed within its trial
        for side in ("offline", "run-batch") if trial % 2 == 0 else ("run-batch", "offline"):
            if side == "offline":
                offline = OfflineEngine(model, engine_args)
                try:
                    offline.run(requests[:4], sampling)  # warm-up, untimed
                    started = time.perf_counter()
                    records = offline.run(requests, sampling)
                    wall = time.perf_counter() - started
                finally:
                    offline.close()
            else:
                records = list(runner.run(requests, sampling))
                assert runner.batch_wall_s is not None and runner.load_s is not None, runner.fault()
                wall = runner.batch_wall_s
                loads.append(runner.load_s)
            assert all(r.ok for r in records), [r.error for r in records if not r.ok][:3]
            assert sum(r.output_tokens for r in records) == len(records) * args.max_tokens
            rates[side].append(len(records) / wall)
            print(f"trial {trial + 1} {side}: {rates[side][-1]:.3f} req/s", file=sys.stderr, flush=True)
    medians = {side: statistics.median(values) for side, values in rates.items()}
    print(
        json.dumps(
            {
                "requests": len(requests),
                "max_tokens": args.max_tokens,
                "trials": args.trials,
                "req_per_s": {side: [round(v, 3) for v in values] for side, values in rates.items()},
                "median_req_per_s": {side: round(v, 3) for side, v in medians.items()},
                "ratio_run_batch_over_offline": round(medians["run-batch"] / medians["offline"], 3),
                "run_batch_load_s": [round(v, 1) for v in loads],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
