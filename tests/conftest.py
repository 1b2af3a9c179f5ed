import os
import sys
from pathlib import Path

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

os.environ.setdefault("VLLMBENCH_CACHE", str(cache_root().parent))

# No per-example deadline: hypothesis' default 200 ms made a timed unit test of every property, and a first example
# that imports numpy.ma or scipy (the package imports them where they are used) overran it on a busy 2-core box.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")


@pytest.hookimpl(trylast=True)  # after xdist's own, which names an item's group where it still can
def pytest_collection_modifyitems(config, items):
    """Real-engine tests first: under xdist (`make test` runs -n auto) the longest one, the smoke's engine load,
    then starts at once beside the fast tests instead of last, alone on one core. Each test of an xdist group
    carries the group in its node id, which is how `--dist loadgroup` keeps a group on one worker."""
    items.sort(key=lambda item: item.get_closest_marker("engine") is None)
    if getattr(config.option, "loadgroup", False):
        for item in items:
            _name_xdist_group(item)


def _name_xdist_group(item):
    """pytest 9.2 builds a node id from a structured id that pytest-xdist 3.8 does not update, so loadgroup
    silently stopped grouping (pytest-dev/pytest-xdist#1386): the smoke's tests each started the engine on their
    own worker. Where xdist's suffix is missing, it is added to the structured id."""
    groups = {
        str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
        for mark in item.iter_markers("xdist_group")
    }
    suffix = "@" + "_".join(sorted(groups))
    if groups and not item.nodeid.endswith(suffix):
        from _pytest.nodeid import NodeId

        item._id = NodeId.parse(item.nodeid + suffix)


@pytest.fixture
def pytester(pytester, monkeypatch):
    """The sessions the suite starts run without hypothesis' and anyio's pytest plugins, which none of them uses:
    hypothesis' terminal summary imports all of hypothesis, and the two cost a started session ~0.8 s of CPU of
    its ~1.5 s. pytester drops PYTEST_ADDOPTS before this runs; the setting ends with the test."""
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:hypothesispytest -p no:anyio")
    return pytester
