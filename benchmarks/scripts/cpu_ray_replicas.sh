#!/usr/bin/env bash
# The ray cell with 1 and with 2 replicas on a local Ray instance of this (CPU) machine, in alternating runs
# (1 2 1 2 ...; PAIRS, default 3, pairs), each run one timed round of the same requests: LIMIT (default 32) of
# data/batch_5k.jsonl, exactly TOKENS (default 32) tokens out, the embedded model. Each run starts its replicas
# and loads the model again (a ray round always does). Saves every run (`cpu-ray-replicasN-pairK`) in
# STORAGE (default benchmarks/results/cpu/ray-replicas, out of .benchmarks: one-round runs of one cell would
# displace the report's) and prints req/s per run, the mean and 95 % interval per replica count, and 2 / 1.
# Run from the repository root after `make model`; ~3 min a run on a 2-core box.
set -euo pipefail
pairs=${PAIRS:-3}
limit=${LIMIT:-32}
tokens=${TOKENS:-32}
py=${PYTHON:-.venv/bin/python}
storage=${STORAGE:-benchmarks/results/cpu/ray-replicas}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
names=()
for pair in $(seq 1 "$pairs"); do
    for replicas in 1 2; do
        name="cpu-ray-replicas$replicas-pair$pair"
        # the two replicas share the 2 cores' RAM: 0.1 each, as for one
        "$py" -m pytest benchmarks/test_batch.py -p no:cacheprovider -q --report=none --mode=ray \
            --limit="$limit" --max-tokens="$tokens" --ignore-eos --rounds=1 \
            --engine-arg=gpu_memory_utilization=0.1 --engine-arg=ray_replicas="$replicas" \
            --benchmark-storage="file://$work" --benchmark-save="$name"
        mkdir -p "$storage" && cp "$(ls "$work"/*/*_"$name".json | tail -1)" "$storage/$name.json"
        names+=("$name")
    done
done
"$py" - "$storage" "${names[@]}" <<'EOF'
import json
import sys

from pytest_vllmbench.measure.rounds import interval

rates: dict[int, list[float]] = {1: [], 2: []}
storage, names = sys.argv[1], sys.argv[2:]
for name in names:
    [cell] = [bench["extra_info"] for bench in json.load(open(f"{storage}/{name}.json"))["benchmarks"]]
    rates[cell["ray_cluster"]["replicas"]].append(cell["requests_per_s"])
    print(f"{name}: {cell['requests_per_s']:.3f} req/s, load {cell['load_s']} s, "
          f"rows per node {cell['ray_rows_per_node']}, engine env {cell['ray_cluster'].get('engine_env')}")
for replicas, values in rates.items():
    spread = interval(values)
    print(f"replicas {replicas}: {', '.join(f'{v:.3f}' for v in values)} -> mean {spread['mean']}, "
          f"95 % interval {spread['ci95_low']} .. {spread['ci95_high']} req/s")
print(f"2 / 1: {interval(rates[2])['mean'] / interval(rates[1])['mean']:.2f}")
EOF
