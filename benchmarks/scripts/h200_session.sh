#!/usr/bin/env bash
# One lent-H200 session's benchmark runs, as they were run for the committed GPU results.
# Expects vLLM 0.26.0 unpacked in /tmp/site (shared/gpu/README.md) and .gpu/extra/ carried
# (wheels for httpx-sse, httpx-aiohttp, platformdirs; the gemma-12b dummy-weight folder).
# Usage: h200_session.sh offline|server|sweep|parity|xdist|tp2   (results and logs go to $OUT)
# xdist and tp2 need two GPUs (kind nvidia-h200-x2).
set -uo pipefail
# Dummy weights cannot write meaningful JSON, so the batch sample drops response_format and every request
# generates exactly 128 tokens (ignore_eos): throughput as with real weights, quality not measured.
source "$(dirname "$0")/device_env.sh"
device_env || exit $?
mkdir -p "$VLLMBENCH_CACHE" && xz -dc .gpu/extra/dummy.tar.xz | tar -C "$VLLMBENCH_CACHE" -xf -
started=$(mktemp)  # the runs saved after this are this call's
common=(-p pytest_vllmbench.pytest_plugin.plugin -p no:cacheprovider -rs --report=none --load-format=dummy)
plain_sample() {
    python3 - <<'PY'
import json
with open("data/batch_5k.jsonl") as src, open("/tmp/batch_5k_plain.jsonl", "w") as out:
    for line in src:
        row = json.loads(line); row["body"].pop("response_format", None); out.write(json.dumps(row) + "\n")
PY
}
batch=(--dataset=/tmp/batch_5k_plain.jsonl "--dataset-transform=response_format removed" --limit=1000 --max-tokens=128
       --ignore-eos)
case "${1:-offline}" in
  xdist)
    plain_sample
    start=$SECONDS
    python3 -m pytest benchmarks/test_batch.py "${common[@]}" -n 2 --model=gemma-12b --mode=offline \
      --mode=server "${batch[@]}" --benchmark-save=h200x2-xdist-batch1000-dummy 2>&1 | tee "$OUT/xdist.log"
    echo "xdist_wall_s $((SECONDS - start))" | tee -a "$OUT/xdist.log" ;;
  tp2)
    plain_sample
    python3 -m pytest benchmarks/test_batch.py "${common[@]}" --model=gemma-12b --mode=offline "${batch[@]}" \
      --engine-arg tensor_parallel_size=2 --benchmark-save=h200x2-tp2-batch1000-dummy 2>&1 | tee "$OUT/tp2.log" ;;
  offline|server)
    plain_sample
    python3 -m pytest benchmarks/test_batch.py "${common[@]}" --model=gemma-12b --model=mistral-7b \
      --model=qwen-14b --mode="$1" "${batch[@]}" --benchmark-save="h200-$1-batch1000-dummy" 2>&1 \
      | tee "$OUT/$1.log" ;;
  sweep)
    # one server start, three load points, 2 rounds each; 400 requests keep c16 near 40 s a round
    plain_sample
    python3 -m pytest benchmarks/test_batch.py "${common[@]}" --model=gemma-12b --mode=server "${batch[@]}" \
      --limit=400 --concurrency=16,64,256 --rounds=2 --slo=ttft:1000,tpot:50 \
      --trace-dir="$OUT/traces" --benchmark-save=h200-sweep-batch400-dummy 2>&1 | tee "$OUT/sweep.log" ;;
  parity)
    python3 -m pytest benchmarks/test_batch.py "${common[@]}" --model=gemma-12b --mode=offline \
      --dataset=random:512:256:1000 --vllm-bench-parity --benchmark-save=h200-parity-dummy 2>&1 \
      | tee "$OUT/parity.log" ;;
esac
status=${PIPESTATUS[0]}
# only this call's saved runs: the committed ones would pass the limit on how many files come back from $OUT
mkdir -p "$OUT/runs" && find .benchmarks -name '*.json' -newer "$started" -exec cp {} "$OUT/runs/" \;
rm -f "$started"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.csv"
exit "$status"
