"""Every pytest session in an environment with this package imports its plugin: the plugin and the `vllmbench`
command import the heavy libraries a cell uses where the cell uses them, not at the top of the modules."""

import json
import subprocess
import sys

import pytest

# each costs tens to hundreds of milliseconds to import (docs/measurements.md, "Fast loops")
IMPORTED_WHERE_USED = [
    *("numpy", "scipy", "httpx", "aiohttp", "httpx_aiohttp", "prometheus_client", "vllm", "torch"),
    *("psutil", "tqdm", "tabulate", "platformdirs"),
]


@pytest.mark.parametrize("module", ["pytest_vllmbench.pytest_plugin.plugin", "pytest_vllmbench.cli"])
def test_importing_the_plugin_or_the_command_imports_no_heavy_library(module):
    probe = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, check=True).stdout)
    assert [name for name in IMPORTED_WHERE_USED if name in loaded] == []
