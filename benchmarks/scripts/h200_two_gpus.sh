#!/usr/bin/env bash
# Two independent jobs at once on nvidia-h200-x2, one GPU each, as the session of 2026-11-30 ran them:
#   GPU 0: the 16 GiB budget cells still missing (Mistral 7B offline, gemma-4b offline and server);
#   GPU 1: a load sweep of gemma-12b in server mode (one server start, concurrency 16, 64, 256) with SLOs and traces.
# Everything (runs, logs, traces) comes back as one archive, $OUT/results.tgz (the bring-back takes few files).
# Expects vLLM in /tmp/site and .gpu/extra carried (h200_seed_cells.sh).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
final=${OUT:?}
work=/tmp/h200-results && mkdir -p "$work/a" "$work/b"
(
    export CUDA_VISIBLE_DEVICES=0 OUT="$work/a" EXTRA_ARGS="--gpu-memory=16GiB" NAME_SUFFIX=-budget16
    timeout 320 bash "$here/h200_seed_cells.sh" offline mistral-7b gemma-4b
    timeout 240 bash "$here/h200_seed_cells.sh" server gemma-4b
) > "$work/gpu0.log" 2>&1 &
(
    export CUDA_VISIBLE_DEVICES=1 OUT="$work/b" LIMIT=400 NAME_SUFFIX=-sweep \
           EXTRA_ARGS="--concurrency=16,64,256 --slo=ttft:1000,tpot:50 --trace-dir=$work/b/traces"
    timeout 560 bash "$here/h200_seed_cells.sh" server gemma-12b
) > "$work/gpu1.log" 2>&1 &
wait
tar -C "$work" -czf "$final/results.tgz" .
ls -l "$final"
