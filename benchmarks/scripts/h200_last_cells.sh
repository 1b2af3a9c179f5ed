#!/usr/bin/env bash
# The cells the session of 2026-11-30 still needed, on one lent H200 (vLLM in /tmp/site, .gpu/extra carried:
# h200_seed_cells.sh). Runs, logs and traces come back as one archive, $OUT/results.tgz (few files come back).
#   h200_last_cells.sh sweep    gemma-12b server, one server start, concurrency 16, 64, 256 on 400 requests,
#                               --slo=ttft:1000,tpot:50, request traces; then Mistral 7B offline under 16 GiB
#   h200_last_cells.sh gemma4b  gemma-4b offline and server under 16 GiB, with Mistral 7B offline in the offline
#                               session (a session whose only cell does not fit saved no run then)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
final=${OUT:?}
work=/tmp/h200-results-${1:?sweep or gemma4b} && mkdir -p "$work"
case "$1" in
  sweep)
    OUT="$work" LIMIT=400 NAME_SUFFIX=-sweep \
      EXTRA_ARGS="--concurrency=16,64,256 --slo=ttft:1000,tpot:50 --trace-dir=$work/traces" \
      timeout 380 bash "$here/h200_seed_cells.sh" server gemma-12b > "$work/sweep-call.log" 2>&1
    OUT="$work" EXTRA_ARGS="--gpu-memory=16GiB" NAME_SUFFIX=-budget16 \
      timeout 150 bash "$here/h200_seed_cells.sh" offline mistral-7b > "$work/mistral-call.log" 2>&1 ;;
  gemma4b)
    OUT="$work" EXTRA_ARGS="--gpu-memory=16GiB" NAME_SUFFIX=-budget16 \
      timeout 300 bash "$here/h200_seed_cells.sh" offline mistral-7b gemma-4b > "$work/offline-call.log" 2>&1
    OUT="$work" EXTRA_ARGS="--gpu-memory=16GiB" NAME_SUFFIX=-budget16 \
      timeout 240 bash "$here/h200_seed_cells.sh" server gemma-4b > "$work/server-call.log" 2>&1 ;;
esac
tar -C "$work" -czf "$final/results.tgz" .
ls -l "$final"
