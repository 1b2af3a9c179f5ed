#!/usr/bin/env bash
# The ray cell beside the offline cell on a lent H200: MODEL (default qwen-14b) with dummy weights, one session, the
# same engine args and requests (LIMIT, default 1000, of data/batch_5k.jsonl, response_format dropped, exactly 128 tokens out),
# ROUNDS (default 3) timed rounds each; prints ray / offline req/s per round and its spread. Results and log: $OUT.
#
# Here, once:  benchmarks/scripts/pack_ray.sh             -> .gpu/ray/p1 .. p5 (ray[data] wheels, 30 MB chunks)
#              benchmarks/scripts/h200_seed_cells.sh pack  -> .gpu/extra (the dummy-weight folders)
# There: vLLM 0.26.0 unpacked in /tmp/site (shared/gpu/README.md); the ray chunks copied to /root/rayparts, one call
# a chunk (pack_ray.sh says how); then, carrying [".gpu/extra"]:  benchmarks/scripts/h200_ray_cells.sh
# No warm-up rounds (--warmup=0): a ray round starts its replicas and loads the model again, so a warm-up would be
# one more engine start; vLLM compiles and captures CUDA graphs while it starts, in both modes. The offline cell runs
# first, so the ray replicas find vLLM's compile cache warm. Budget: ~2.5 min for the offline engine, then ~1.5 min
# a ray round (replica start + load), under 500 s in all at 1000 requests; ENGINE_ARGS="--engine-arg k=v ..." adds
# engine args to both cells (e.g. enforce_eager=true to skip the compile, labelled so by the saved engine args; the
# ray_* ones reach the ray cell only). INTERLEAVE=1 alternates the cells round by round (--interleave: O R, R O, O R;
# the offline engine stays up at 0.45 of the GPU, each ray round's replica gets the other 0.45). GUARD_S=N stops
# the session (SIGTERM) N s after this script started, so a call that would overrun 600 s still saves the rounds done.
# MODES="ray" runs the ray cell alone. mistral-7b cannot be a ray cell here: its dummy folder has only Mistral's own
# tokenizer files, which Ray Data's chat-template stage cannot read (the cell is skipped).
set -uo pipefail
source "$(dirname "$0")/device_env.sh"
device_env || exit $?
export RAY_USAGE_STATS_ENABLED=0
if ! python3 -c 'import ray.data.llm' 2>/dev/null; then
    compgen -G "/root/rayparts/part*" >/dev/null || { echo "no ray chunks in /root/rayparts: carry .gpu/ray/pN"; exit 3; }
    mkdir -p /tmp/raywhl
    cat /root/rayparts/part* | xz -dc | tar -C /tmp/raywhl -xf - || { echo "ray chunks incomplete: carry again"; exit 4; }
    # only the wheels whose distribution the image and /tmp/site lack, or have older than ray[data] was packed with
    # (ray needs packaging>=24.2, for one): never a second copy of what is there and new enough
    mapfile -t missing < <(python3 - /tmp/raywhl/*.whl <<'PY'
import importlib.metadata as metadata, sys
from pathlib import Path
from packaging.version import Version
for wheel in sys.argv[1:]:
    name, version = Path(wheel).name.split("-")[:2]
    try:
        if Version(metadata.version(name)) >= Version(version):
            continue
    except metadata.PackageNotFoundError:
        pass
    print(wheel)
PY
)
    echo "installing ${#missing[@]} wheels into /tmp/site: ${missing[*]##*/}"
    python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site "${missing[@]}" || exit 4
    python3 -c 'import ray.data.llm, ray; print("ray", ray.__version__)' || exit 4
fi
mkdir -p "$VLLMBENCH_CACHE/models" && xz -dc .gpu/extra/seed-dummy.tar.xz | tar -C "$VLLMBENCH_CACHE/models" -xf - || exit 4
python3 - <<'PY'
import json
with open("data/batch_5k.jsonl") as src, open("/tmp/batch_5k_plain.jsonl", "w") as out:
    for line in src:
        row = json.loads(line); row["body"].pop("response_format", None); out.write(json.dumps(row) + "\n")
PY
limit=${LIMIT:-1000}
rounds=${ROUNDS:-3}
model=${MODEL:-qwen-14b}
# the run is named for the card that ran it (h100, h200, ...): a lease may give an H100 where an H200 was asked
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | grep -oiE '[a-z][0-9]{2,3}[a-z]*' | head -1)
gpu=$(echo "${gpu:-gpu}" | tr '[:upper:]' '[:lower:]')
name="$gpu-ray-vs-offline-$model-batch$limit-rounds$rounds-dummy${NAME_SUFFIX:-}"
log="$OUT/ray-vs-offline${NAME_SUFFIX:-}.log"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.csv"
interleave=(); [ -n "${INTERLEAVE:-}" ] && interleave=(--interleave)
modes=(); for mode in ${MODES:-offline ray}; do modes+=(--mode="$mode"); done
left=$(( ${GUARD_S:-0} - SECONDS )); [ "$left" -ge 1 ] || left=1  # timeout 0 would mean no limit
# --foreground: the signal goes to pytest only, which stops its engines and Ray itself (h200_seed_cells.sh says more)
guard=(); [ -n "${GUARD_S:-}" ] && guard=(timeout --foreground -s TERM -k 90 "$left")
start=$SECONDS
# shellcheck disable=SC2086  # ENGINE_ARGS is a list of options
"${guard[@]}" python3 -m pytest benchmarks/test_batch.py -p pytest_vllmbench.pytest_plugin.plugin -p no:cacheprovider -rs --report=none \
    --load-format=dummy --model="$model" "${modes[@]}" --dataset=/tmp/batch_5k_plain.jsonl \
    "--dataset-transform=response_format removed" --limit="$limit" --max-tokens=128 --ignore-eos \
    --rounds="$rounds" "${interleave[@]}" --warmup=0 ${ENGINE_ARGS:-} --benchmark-save="$name" 2>&1 | tee -a "$log"
status=${PIPESTATUS[0]}
echo "session_s $((SECONDS - start))" | tee -a "$log"
mkdir -p "$OUT/runs" && cp .benchmarks/*/*_"$name".json "$OUT/runs/" 2>/dev/null
python3 - "$OUT/runs" "$name" <<'PY' | tee -a "$log"
import json, statistics, sys
from pathlib import Path
[run] = Path(sys.argv[1]).glob(f"*_{sys.argv[2]}.json")
cells = {b["extra_info"]["mode"]: b["extra_info"] for b in json.loads(run.read_text())["benchmarks"]}
if set(cells) != {"offline", "ray"}:
    sys.exit(f"ray/offline: cells saved: {sorted(cells)}")
per_round = {mode: [r["requests_per_s"] for r in cell.get("rounds") or [cell]] for mode, cell in cells.items()}
ratios = [ray / offline for ray, offline in zip(per_round["ray"], per_round["offline"])]
for mode, values in per_round.items():
    print(f"{mode:8} req/s per round: {', '.join(f'{v:.2f}' for v in values)}  (load_s {cells[mode].get('load_s')})")
spread = f", stddev {statistics.stdev(ratios):.3f}" if len(ratios) > 1 else ""
print(f"ray/offline per round: {', '.join(f'{r:.3f}' for r in ratios)}; mean {statistics.mean(ratios):.3f}"
      f" (min {min(ratios):.3f}, max {max(ratios):.3f}{spread}); target >= 0.95")
PY
exit "$status"
