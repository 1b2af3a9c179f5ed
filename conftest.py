# pytester drives whole pytest runs in the plugin's own tests; it must be enabled in the root conftest.
from typing import Any

import pytest

from pytest_vllmbench.pytest_plugin.xdist_workers import ScopeScheduling

pytest_plugins = ["pytester"]

# Modules whose tests share one engine (a module-scoped fixture): under `make test -n auto` one worker runs each.
ONE_WORKER_MODULES = ("tests/test_engine_smoke.py::",)


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's loadgroup would keep them together, but it loses its groups under pytest 9.2 (pytest-xdist#1386)."""
    if config.getoption("dist") not in ("load", "loadgroup"):
        return None

    def scope_of(nodeid: str) -> str:
        return next((module for module in ONE_WORKER_MODULES if nodeid.startswith(module)), nodeid)

    return ScopeScheduling(config, log, scope_of)
