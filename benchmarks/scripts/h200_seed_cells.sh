#!/usr/bin/env bash
# The seed's six cells (gemma-12b-4bit, mistral-7b, qwen-14b x offline, server) on a lent H200, dummy weights,
# with the same settings as the committed gemma-12b runs (h200_session.sh): 1,000 requests of data/batch_5k.jsonl,
# response_format dropped, exactly 128 tokens out (--ignore-eos). Results and logs go to $OUT.
#
# Here, once:  benchmarks/scripts/h200_seed_cells.sh pack
#   builds the dummy-weight folders (shipped config + the model's own tokenizer: `vllmbench prepare-model`) into
#   .gpu/extra/seed-dummy.tar.xz and bitsandbytes for CUDA 13 into .gpu/extra/bitsandbytes.tar.xz (~3.5 MB).
# There (vLLM 0.26.0 unpacked in /tmp/site, shared/gpu/README.md; carry [".gpu/extra"]):
#   benchmarks/scripts/h200_seed_cells.sh offline|server|both|both-server-first MODEL...   e.g.  both gemma-12b-4bit
#   WORKERS=2 ... on nvidia-h200-x2 runs the cells on two GPUs at once (pytest-xdist -n 2).
#   LIMIT=N (default 1000) requests, EXTRA_ARGS="..." more options (e.g. --gpu-memory=16GiB, --concurrency=16,64,
#   "--rounds=3 --interleave" to alternate offline and server round by round, both engines up at 0.45 of the GPU),
#   NAME_SUFFIX=-x appended to the saved run's and the log's names; DATASET_N=20000 a longer job than the 5K sample
#   (`vllmbench make-dataset --n N --seed 0`, whose first 5,000 are data/batch_5k.jsonl; response_format removed too).
# One engine start is ~2.5 min on a fresh machine: keep each call to <= 3 engines (600 s per call).
# gemma-12b-4bit first writes a random bf16 checkpoint of the 12B's shape (~22 GiB, on the GPU) into the cache,
# which vLLM quantizes in flight (bitsandbytes 4-bit); the folder is kept for later calls of a warm lease.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ "${1:-}" = pack ]; then
    set -e
    py=${PYTHON:-.venv/bin/python}
    for model in gemma-12b-4bit mistral-7b qwen-14b gemma-12b gemma-1b gemma-4b; do
        "$py" -m pytest_vllmbench.cli prepare-model "$model" --verify >/dev/null
    done
    cache=$("$py" -c 'from pytest_vllmbench.engines.embedded_model import cache_root; print(cache_root())')
    mkdir -p .gpu/extra
    tar -C "$cache" -cf - dummy/gemma-12b-4bit dummy/mistral-7b dummy/qwen-14b dummy/gemma-12b dummy/gemma-1b dummy/gemma-4b \
        | xz -9 -T2 > .gpu/extra/seed-dummy.tar.xz
    PATH=$(dirname "$py"):$PATH "$here/pack_bitsandbytes.sh" .gpu/extra
    # the plugin's small pure-Python dependencies, installed there only where the image lacks them
    # (one image had platformdirs, a later one did not)
    rm -rf .gpu/extra/whl && "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        -d .gpu/extra/whl platformdirs httpx-sse httpx-aiohttp pytest-timeout tabulate
    ls -l .gpu/extra
    exit 0
fi
mode=${1:?usage: h200_seed_cells.sh pack | offline|server|both|both-server-first MODEL...}
shift
[ $# -gt 0 ] || { echo "name the models (gemma-12b-4bit mistral-7b qwen-14b)"; exit 2; }
source "$here/device_env.sh"
device_env /tmp/bnb || exit $?
mkdir -p /tmp/bnb && xz -dc .gpu/extra/bitsandbytes.tar.xz | tar -C /tmp/bnb -xf - || exit 4
mkdir -p "$VLLMBENCH_CACHE/models" && xz -dc .gpu/extra/seed-dummy.tar.xz | tar -C "$VLLMBENCH_CACHE/models" -xf - || exit 4
batch=data/batch_5k.jsonl plain=/tmp/batch_5k_plain.jsonl
if [ -n "${DATASET_N:-}" ]; then  # a longer job than the 5K sample: the same generator and seed, more candidates
    batch=/tmp/batch_${DATASET_N}.jsonl plain=/tmp/batch_${DATASET_N}_plain.jsonl
    python3 -m pytest_vllmbench.cli make-dataset --n "$DATASET_N" --seed 0 --out "$batch" >/dev/null || exit 4
fi
python3 - "$batch" "$plain" <<'PY'
import json, sys
with open(sys.argv[1]) as src, open(sys.argv[2], "w") as out:
    for line in src:
        row = json.loads(line); row["body"].pop("response_format", None); out.write(json.dumps(row) + "\n")
PY
modes=(--mode="$mode")
[ "$mode" = both ] && modes=(--mode=offline --mode=server)
[ "$mode" = both-server-first ] && modes=(--mode=server --mode=offline)  # the other order, for alternation
models=(); for model in "$@"; do models+=(--model="$model"); done
xdist=(); [ "${WORKERS:-1}" -gt 1 ] && xdist=(-n "$WORKERS")
limit=${LIMIT:-1000}
# the run is named for the card that ran it (h100, h200, ...): a lease may give an H100 where an H200 was asked
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | grep -oiE '[a-z][0-9]{2,3}[a-z]*' | head -1)
gpu=$(echo "${gpu:-gpu}" | tr '[:upper:]' '[:lower:]')
name="$gpu-seed-$mode-$(IFS=_; echo "$*")-batch$limit${DATASET_N:+-of$DATASET_N}-dummy${NAME_SUFFIX:-}"
log="$OUT/seed-$mode-$(IFS=_; echo "$*")${DATASET_N:+-of$DATASET_N}${NAME_SUFFIX:-}.log"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.csv"
# the boot hash every saved run carries: the report pools one boot's runs; none printed means none saved
python3 -c 'from pytest_vllmbench.measure.machine import boot_id; print("boot", boot_id())' | tee -a "$log"
for model in "$@"; do  # the random checkpoint is written once, before any engine, and timed on its own
    if [ "$model" = gemma-12b-4bit ]; then
        start=$SECONDS
        python3 -m pytest_vllmbench.cli prepare-model gemma-12b-4bit --random-weights 2>&1 | tee -a "$log"
        echo "random_checkpoint_s $((SECONDS - start))" | tee -a "$log"
    fi
done
# GUARD_S=N: stop the session (SIGTERM: the plugin ends it as an interrupt) N s after this script started, so a call
# that would overrun the device's 600 s still brings back its log and the cells (under --interleave, the rounds) done
# (--foreground: only pytest gets the signal; it stops its engines itself, in order, instead of vLLM's workers
# being signalled with it and the last round failing instead of being cut. A pytest still there 90 s after it is
# killed alone: what it started then outlives it until the lent machine is handed back)
left=$(( ${GUARD_S:-0} - SECONDS )); [ "$left" -ge 1 ] || left=1  # timeout 0 would mean no limit
guard=(); [ -n "${GUARD_S:-}" ] && guard=(timeout --foreground -s TERM -k 90 "$left")
"${guard[@]}" python3 -m pytest benchmarks/test_batch.py -p pytest_vllmbench.pytest_plugin.plugin -p no:cacheprovider -rs --report=none \
    --load-format=dummy "${models[@]}" "${modes[@]}" "${xdist[@]}" --dataset="$plain" \
    "--dataset-transform=response_format removed" \
    --limit="$limit" --max-tokens=128 --ignore-eos ${EXTRA_ARGS:-} --benchmark-save="$name" 2>&1 | tee -a "$log"
status=${PIPESTATUS[0]}
# only this call's saved run: what comes back from $OUT is limited in files
mkdir -p "$OUT/runs" && cp .benchmarks/*/*_"$name".json "$OUT/runs/" 2>/dev/null
exit "$status"
