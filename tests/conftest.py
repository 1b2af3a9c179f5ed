import os
import sys
from pathlib import Path
from typing import Any

# aiohttp to prometheus_client are imported here, before any in-process pytester run: pytester restores
# sys.modules after each run, and a module first imported inside one would come back as a second copy whose
# exception classes httpx's cached httpcore-exception map no longer recognises (httpcore.ConnectError escaping as
# itself, not httpx's), or, for numpy, as a reloaded C extension. The package imports them where a cell uses them.
import aiohttp  # noqa: F401
import httpcore  # noqa: F401
import httpx  # noqa: F401
import httpx_aiohttp  # noqa: F401
import numpy  # noqa: F401
import prometheus_client.parser  # noqa: F401
import pytest
from hypothesis import settings

sys.path.insert(0, str(Path(__file__).parent))  # tests share small helpers (saved_runs.py, procs.py)

# pytester gives each session a fresh HOME, and with it an empty model cache: a session that reaches an embedded
# cell would convert Gemma 3 270M again (a minute or more). Every session shares the cache `make test` prepared;
# a test of preparation itself points VLLMBENCH_CACHE elsewhere.
from pytest_vllmbench.engines.embedded_model import cache_root
from pytest_vllmbench.pytest_plugin.xdist_workers import ScopeScheduling

os.environ.setdefault("VLLMBENCH_CACHE", str(cache_root().parent))

# No per-example deadline: hypothesis' default 200 ms made a timed unit test of every property, and a first example
# that imports numpy.ma or scipy (the package imports them where they are used) overran it on a busy 2-core box.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")


def pytest_collection_modifyitems(config, items):
    """Real-engine tests first: under xdist (`make test` runs -n auto) the longest one, the smoke's engine load,
    then starts at once beside the fast tests instead of last, alone on one core."""
    items.sort(key=lambda item: item.get_closest_marker("engine") is None)


@pytest.fixture(autouse=True)
def _engine_on_its_workers_core(request):
    """Under pytest-xdist, a real-engine test and all it starts run on its worker's own core. vLLM's CPU build binds
    an engine's compute threads to the cores a process may use less one it reserves: on a 2-core machine, core 0
    for every engine, so two workers' engines computed on one core. One engine test took 249 s beside the others
    and 62 s alone, and the engine tier 977 s against 797 s pinned (docs/measurements.md, "Fast loops"). Tests that
    start two engines or Ray nodes of their own (`two_engines`, `ray_cluster`) keep every core. The smoke's engine
    starts in a module-scoped fixture, before this one: it keeps every core too."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    marked = request.node.get_closest_marker
    if not worker.startswith("gw") or not marked("engine") or marked("two_engines") or marked("ray_cluster"):
        yield
        return
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        yield
        return
    os.sched_setaffinity(0, {cpus[int(worker.removeprefix("gw")) % len(cpus)]})
    try:
        yield
    finally:
        os.sched_setaffinity(0, cpus)


# Tests that share something costly (a module-scoped fixture) and so run on one worker under `make test -n auto`,
# by node-id prefix. Here, not in the root conftest: `pytest benchmarks/ -n 2` must get the plugin's own scheduler.
ONE_WORKER = {
    "tests/test_engine_smoke.py::": "engine-smoke",  # one engine load
    "tests/test_plots.py::test_no_text_is_clipped_in_any_plot_of_the_committed_runs": "committed-report",
    "tests/test_plots.py::test_every_gpu_cell_of_the_committed_runs_gets_a_cdf": "committed-report",
}


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's loadgroup would keep them together, but it loses its groups under pytest 9.2 (pytest-xdist#1386)."""
    if config.getoption("dist") not in ("load", "loadgroup"):
        return None

    def scope_of(nodeid: str) -> str:
        return next((group for prefix, group in ONE_WORKER.items() if nodeid.startswith(prefix)), nodeid)

    return ScopeScheduling(config, log, scope_of)


@pytest.fixture
def pytester(pytester, monkeypatch):
    """The sessions the suite starts run without hypothesis' and anyio's pytest plugins, which none of them uses:
    hypothesis' terminal summary imports all of hypothesis, and the two cost a started session ~0.8 s of CPU of
    its ~1.5 s. pytester drops PYTEST_ADDOPTS before this runs; the setting ends with the test."""
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:hypothesispytest -p no:anyio")
    return pytester
