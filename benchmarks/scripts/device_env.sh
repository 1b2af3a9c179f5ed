# Sourced (not run) by the scripts that run on a lent GPU machine: `source "$here/device_env.sh"; device_env || exit $?`.
# device_env [DIR]: checks that vLLM is unpacked in /tmp/site (shared/gpu/README.md), installs from
# .gpu/extra/whl the plugin's small pure-Python dependencies the image lacks (`h200_seed_cells.sh pack` packs them;
# those the image has are left alone, so vLLM keeps the versions it was tested with), exports the environment every
# run there needs (DIR, e.g. /tmp/bnb, goes first on PYTHONPATH), and imports every module the plugin needs, so a
# missing one stops the call before any engine or checkpoint costs device time.
device_env() {
    [ -d /tmp/site/vllm ] || { echo "fresh machine: carry vLLM again"; return 3; }
    local wheel module
    for wheel in .gpu/extra/whl/*.whl; do  # a wheel's file name starts with its module's name
        [ -e "$wheel" ] || continue
        module=$(basename "$wheel"); module=${module%%-*}
        PYTHONPATH=/tmp/site python3 -c "import $module" 2>/dev/null && continue
        python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$wheel" || return 4
    done
    export PYTHONPATH=${1:+$1:}/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 \
           VLLM_USE_FLASHINFER_SAMPLER=0 VLLMBENCH_CACHE=/tmp/vllmbench-cache CUDA_DEVICE_ORDER=PCI_BUS_ID \
           NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
    python3 -c "import pytest_vllmbench.pytest_plugin.plugin, platformdirs, httpx_sse, httpx_aiohttp, pytest_timeout, \
tabulate, numpy, scipy, psutil, tqdm, prometheus_client, pynvml" || { echo "the image lacks a module above: pack it"; return 4; }
}
