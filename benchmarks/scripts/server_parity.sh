#!/usr/bin/env bash
# Server parity: on one server's args and the same requests, the project's owned-server cell, its endpoint cell
# against a hand-started `vllm serve`, and `vllm bench serve` against that same server, >= 3 runs each, with the
# CPU use of client / API server / engine core and the GPU busy % sampled once a second (host_load.py).
# The hand-started server and the owned one share the GPU (GPU_SHARE each); prefix caching is off on both, so no
# run is helped by an earlier one's cache. Endpoint and bench-serve runs alternate; the owned cell runs its rounds
# (one warm-up + ROUNDS timed) in one pytest call between them, as one cell does.
# `vllm bench serve` gets the same conversations with the system and user messages joined into one user message
# (ShareGPT's layout: one human turn per request), 128 tokens out, ignore_eos.
#
#   GPU (after the vLLM carry, shared/gpu/README.md; carry .gpu/extra):  server_parity.sh gpu [MODEL]
#   CPU (embedded model, small N, proves the procedure):               server_parity.sh cpu
# Environment: N requests (3000 on the GPU, 16 on the CPU), RUNS (3), OUT (results folder), PART (all, or methods /
# owned: on a fresh H200 the whole procedure at N=2000 outlasts one 600 s device call, so run PART=methods (server,
# endpoint and bench runs) and then PART=owned (the owned-server cell) in the next call of the same warm lease).
# PART=clients instead asks whether the client holds a server cell back: on one hand-started server (GPU_SHARE 0.9
# there, SERVE_ARGS added, e.g. "--api-server-count 4"), after the same warm-up, RUNS pairs of endpoint cells at
# --client-processes=1 and at CLIENTS (2), the order flipped each pair, each with ROUNDS (2) timed rounds after its own
# warm-up. parity_summary.py writes client_pairs.json: each count's rounds, mean and 95 % interval, and the ratio.
# The saved cells stay out of .benchmarks/: an endpoint cell cannot tell that the server runs dummy weights.
# Writes $OUT/server_parity.tar (series, bench results, saved cells, server log, server_parity.json), after every step.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
where=${1:?usage: server_parity.sh gpu|cpu [MODEL]}
model=${2:-mistral-7b}
runs=${RUNS:-3}
OUT=${OUT:?set OUT}
work=${WORK:-/tmp/server-parity}
part=${PART:-all}
[ "$part" = owned ] || rm -rf "$work"
mkdir -p "$work"
snapshot() {  # what is done so far, in one file: a run cut short by a time limit still brings back its steps
    cp .benchmarks/*/*_parity-*.json "$work/" 2>/dev/null
    tar -C "$work" -cf "$OUT/server_parity.tar" .
}
py=${PYTHON:-python3}
if [ "$where" = gpu ]; then
    source "$here/device_env.sh"
    device_env || exit $?
    mkdir -p "$VLLMBENCH_CACHE/models" && xz -dc .gpu/extra/seed-dummy.tar.xz | tar -C "$VLLMBENCH_CACHE/models" -xf -
    n=${N:-3000}
    weights=$VLLMBENCH_CACHE/models/dummy/$model
    share=${GPU_SHARE:-0.45}; [ "$part" = clients ] && share=${GPU_SHARE:-0.9}  # one server alone
    args=(--dtype bfloat16 --max-model-len 8192 --load-format dummy --no-enable-prefix-caching
          --gpu-memory-utilization "$share")
    cell_args=(--load-format=dummy --engine-arg dtype=bfloat16 --engine-arg max_model_len=8192
               --engine-arg no_enable_prefix_caching=true --engine-arg "gpu_memory_utilization=$share")
    [ "$model" = mistral-7b ] && args+=(--tokenizer-mode mistral) && cell_args+=(--engine-arg tokenizer_mode=mistral)
    tok=(--tokenizer "$weights"); [ "$model" = mistral-7b ] && tok+=(--tokenizer-mode mistral)
    card=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | grep -oiE '[a-z][0-9]{2,3}[a-z]*' | head -1)
    card=$(echo "${card:-gpu}" | tr '[:upper:]' '[:lower:]')  # h100, h200: a lease may give either
else
    export PYTHONPATH=$PWD
    n=${N:-16}
    weights=$("$py" -c 'from pytest_vllmbench.engines.embedded_model import ensure_prepared; print(ensure_prepared("gemma-270m"))' 2>/dev/null)
    [ -d "$weights" ] || { echo "the embedded model is not prepared"; exit 4; }
    model=gemma-270m card=cpu
    # on the CPU gpu_memory_utilization is the share of RAM for the KV cache: two servers share the machine
    args=(--dtype bfloat16 --max-model-len 2048 --enforce-eager --no-enable-prefix-caching --gpu-memory-utilization 0.1)
    cell_args=(--engine-arg no_enable_prefix_caching=true --engine-arg gpu_memory_utilization=0.1)
    tok=(--tokenizer "$weights")
fi
read -ra more <<< "${SERVE_ARGS:-}"; args+=("${more[@]}")
"$py" - "$n" <<'PY'
import json, sys
n = int(sys.argv[1])
bench = []
with open("data/batch_5k.jsonl") as src, open("/tmp/parity_plain.jsonl", "w") as out:
    for i, line in zip(range(n), src):
        row = json.loads(line); row["body"].pop("response_format", None); out.write(json.dumps(row) + "\n")
        text = "\n\n".join(m["content"] for m in row["body"]["messages"])
        bench.append({"id": str(i), "conversations": [{"from": "human", "value": text}, {"from": "gpt", "value": "-"}]})
with open("/tmp/parity_bench.json", "w") as out:  # ShareGPT's layout: the custom dataset would need pandas
    json.dump(bench, out)
PY
plugin=(-p pytest_vllmbench.pytest_plugin.plugin)  # unless installed: registering it twice is an error
"$py" -c 'import importlib.metadata as m, sys; sys.exit(not any(e.name == "vllmbench" for e in m.entry_points(group="pytest11")))' \
    && plugin=()
common=(benchmarks/test_batch.py "${plugin[@]}" -p no:cacheprovider -rs --report=none
        --dataset=/tmp/parity_plain.jsonl "--dataset-transform=response_format removed" --limit="$n"
        --max-tokens=128 --ignore-eos)
bench() {  # $1: run label
    "$py" "$here/host_load.py" --out "$work/series-$1.json" --server-pid $serve_pid -- \
        "$py" -m pytest_vllmbench.engines.vllm_main bench serve --backend openai-chat --endpoint /v1/chat/completions \
        --base-url "http://127.0.0.1:$port" --model "$model" "${tok[@]}" --dataset-name sharegpt \
        --dataset-path /tmp/parity_bench.json --num-prompts "${N_BENCH:-$n}" --sharegpt-output-len 128 \
        --ignore-eos --save-result --result-dir "$work" --result-filename "$1.json" 2>&1 | tail -25
    snapshot
}
endpoint() {  # $1: run label; the rest: more options for the cell
    local label=$1; shift
    "$py" "$here/host_load.py" --out "$work/series-$label.json" --server-pid $serve_pid -- \
        "$py" -m pytest "${common[@]}" --mode=endpoint --model="$model" --endpoint="http://127.0.0.1:$port/v1" \
        --benchmark-save="parity-$label" "$@" 2>&1 | tail -8
    snapshot
}
port=8011
log=$work/serve.log
if [ "$part" != owned ]; then
    VLLM_SERVER_DEV_MODE=1 setsid "$py" -m pytest_vllmbench.engines.vllm_main serve "$weights" --served-model-name "$model" \
        --host 127.0.0.1 --port $port "${args[@]}" >"$log" 2>&1 &
    serve_pid=$!
    trap 'kill -TERM -- -$serve_pid 2>/dev/null; sleep 5; kill -KILL -- -$serve_pid 2>/dev/null' EXIT
    for _ in $(seq 600); do
        curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
        kill -0 $serve_pid 2>/dev/null || { echo "vllm serve exited"; tail -30 "$log"; exit 5; }
        sleep 1
    done
    echo "hand-started server healthy after ${SECONDS}s"
    N_BENCH=$(( ${WARMUP_N:-500} < n ? ${WARMUP_N:-500} : n )) bench warmup  # untimed: first requests on a fresh server compile kernels
    if [ "$part" = clients ]; then
        many=${CLIENTS:-2} rounds=(--rounds="${ROUNDS:-2}")
        for i in $(seq "$runs"); do
            one=(endpoint "$card-clients1-$i" --client-processes=1 "${rounds[@]}")
            two=(endpoint "$card-clients$many-$i" --client-processes="$many" "${rounds[@]}")
            if [ $((i % 2)) = 1 ]; then "${one[@]}"; "${two[@]}"; else "${two[@]}"; "${one[@]}"; fi
        done
        "$py" "$here/parity_summary.py" "$work" > "$work/client_pairs.json"; cat "$work/client_pairs.json"
        snapshot
        exit 0  # the EXIT trap stops the server
    fi
    for i in $(seq "$runs"); do
        if [ $((i % 2)) = 1 ]; then endpoint "endpoint-$i"; bench "bench-$i"; else bench "bench-$i"; endpoint "endpoint-$i"; fi
    done
fi
if [ "$part" != methods ]; then
    "$py" "$here/host_load.py" --out "$work/series-owned.json" -- \
        "$py" -m pytest "${common[@]}" --mode=server --model="$model" "${cell_args[@]}" --rounds="$runs" --warmup=1 \
        --benchmark-save=parity-owned 2>&1 | tail -12
fi
grep -E "non-default args|max_num_seqs|max_num_batched_tokens|chunked|enforce_eager|prefix" "$log" | head -20 \
    > "$work/serve-settings.log"
snapshot  # the owned cell's saved run into $work before the summary reads it
"$py" "$here/parity_summary.py" "$work" > "$work/server_parity.json"; cat "$work/server_parity.json"
snapshot
