import os
import sys
from pathlib import Path
from typing import Any

# Imported here, before any in-process pytester run: pytester restores sys.modules after each run, and a
# module first imported inside one would come back as a second copy whose exception classes httpx's cached
# httpcore-exception map no longer recognises (httpcore.ConnectError escaping as itself, not httpx's).
import httpcore  # noqa: F401
import httpx  # noqa: F401
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests share small helpers (saved_runs.py, procs.py)

# pytester gives each session a fresh HOME, and with it an empty model cache: a session that reaches an embedded
# cell would convert Gemma 3 270M again (a minute or more). Every session shares the cache `make test` prepared;
# a test of preparation itself points VLLMBENCH_CACHE elsewhere.
from pytest_vllmbench.engines.embedded_model import cache_root
from pytest_vllmbench.pytest_plugin.xdist_workers import ScopeScheduling

os.environ.setdefault("VLLMBENCH_CACHE", str(cache_root().parent))


def pytest_collection_modifyitems(config, items):
    """Real-engine tests first: under xdist (`make test` runs -n auto) the longest one, the smoke's engine load,
    then starts at once beside the fast tests instead of last, alone on one core."""
    items.sort(key=lambda item: item.get_closest_marker("engine") is None)


# Modules whose tests share one engine (a module-scoped fixture): under `make test -n auto` one worker runs each.
# Here, not in the root conftest: `pytest benchmarks/ -n 2` must get the plugin's own scheduler.
ONE_WORKER_MODULES = ("tests/test_engine_smoke.py::",)


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's loadgroup would keep them together, but it loses its groups under pytest 9.2 (pytest-xdist#1386)."""
    if config.getoption("dist") not in ("load", "loadgroup"):
        return None

    def scope_of(nodeid: str) -> str:
        return next((module for module in ONE_WORKER_MODULES if nodeid.startswith(module)), nodeid)

    return ScopeScheduling(config, log, scope_of)
