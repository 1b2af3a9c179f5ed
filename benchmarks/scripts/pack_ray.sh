#!/usr/bin/env bash
# Pack ray[data] for the lent H200 (Python 3.12; the image has torch, transformers, numpy, requests, pyyaml, ...;
# vLLM 0.26.0 travels on its own, shared/gpu/README.md): the cp312 manylinux x86_64 wheels of ray[data] and what
# it needs, downloaded from the package registry, in one xz-compressed tar cut into chunks of at most CHUNK_MB
# (default 30) MB, one folder a chunk, so that each device call carries one chunk beside the repository's tree
# (64 MiB a call):
#   benchmarks/scripts/pack_ray.sh [.gpu/ray]   -> .gpu/ray/p1/part00 .gpu/ray/p2/part01 ...  (~150 MB, 5 chunks)
# On the device, one call a chunk, back to back (a warm machine keeps /root between calls):
#   carry [".gpu/ray/pN"]   command: mkdir -p /root/rayparts && cp .gpu/ray/p*/part* /root/rayparts/
# then benchmarks/scripts/h200_ray_cells.sh installs the wheels the image and /tmp/site lack, and runs the cells.
# Wheels are already compressed: xz gains little on them, so it runs at its fastest level. SKIP (default numpy,
# which the image's torch and transformers bring) names distributions left out.
set -euo pipefail
out=$(realpath -m "${1:-.gpu/ray}")
version=${RAY_VERSION:-2.60.0}
skip=${SKIP:-numpy}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
plat=()
for p in manylinux2014_x86_64 manylinux_2_17_x86_64 manylinux_2_24_x86_64 manylinux_2_27_x86_64 \
         manylinux_2_28_x86_64 manylinux_2_31_x86_64 manylinux1_x86_64; do
    plat+=(--platform "$p")
done
python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
    "${plat[@]}" -d "$work/whl" "ray[data]==$version"
for name in $skip; do rm -f "$work/whl/$name"-*.whl; done
wheels=$(find "$work/whl" -name '*.whl' | wc -l)
# the folder must be ignored by git (it travels with `carry`, never in a commit)
mkdir -p "$out"
git check-ignore -q "$out" || echo "pack_ray: warning: $out is not ignored by git (echo /.gpu/ >> .git/info/exclude)" >&2
tar -C "$work/whl" -cf - . | xz -0 -T0 > "$work/ray-wheels.tar.xz"
rm -rf "$out"/p[0-9]*
split -b "${CHUNK_MB:-30}000000" -d "$work/ray-wheels.tar.xz" "$work/part"
i=0
for part in "$work"/part*; do
    i=$((i + 1))
    mkdir -p "$out/p$i"
    mv "$part" "$out/p$i/"
done
du -sh "$out"/p*
echo "pack_ray: $i chunks of ray[data]==$version wheels ($wheels wheels); carry p1..p$i one per call"
