#!/usr/bin/env bash
# Pack bitsandbytes 0.50.2 for the lent H200 (CUDA 13, Python 3.12): its python package and the one native
# library that GPU loads, xz-compressed (~3.5 MB instead of the 43 MB wheel), into an ignored folder.
# Usage (here, once): benchmarks/scripts/pack_bitsandbytes.sh [.gpu/extra]   -> .gpu/extra/bitsandbytes.tar.xz
# On the device (same call as the run, or any later call of a warm lease):
#   mkdir -p /tmp/bnb && xz -dc .gpu/extra/bitsandbytes.tar.xz | tar -C /tmp/bnb -xf -
#   export PYTHONPATH=/tmp/bnb:/tmp/site:$PWD         # bitsandbytes imports from /tmp/bnb
# and carry [".gpu/extra"] in that call. vLLM's bitsandbytes path checks `import bitsandbytes` and its version.
set -euo pipefail
out=${1:-.gpu/extra}
keep=libbitsandbytes_cuda130.so   # torch 2.11+cu130 on the device; bitsandbytes picks the library by CUDA version
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_24_x86_64 -d "$work/whl" bitsandbytes==0.50.2
mkdir -p "$work/site"
python3 -m zipfile -e "$work"/whl/bitsandbytes-0.50.2-*.whl "$work/site"
find "$work/site/bitsandbytes" -name 'libbitsandbytes_*.so' ! -name "$keep" -delete
[ -f "$work/site/bitsandbytes/$keep" ] || { echo "pack_bitsandbytes: $keep missing from the wheel" >&2; exit 1; }
mkdir -p "$out"
# the folder must be ignored by git (it travels with `carry`, never in a commit)
git check-ignore -q "$out" || echo "pack_bitsandbytes: warning: $out is not ignored by git (echo /.gpu/ >> .git/info/exclude)" >&2
tar -C "$work/site" -cf - bitsandbytes bitsandbytes-0.50.2.dist-info | xz -9 -T2 > "$out/bitsandbytes.tar.xz"
ls -l "$out/bitsandbytes.tar.xz"
