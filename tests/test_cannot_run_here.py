"""A cell that cannot run on this machine is a skipped cell with the reason, before any engine starts (issue 24)."""

import pytest
from bench_project import bench_project

NO_ENGINE_CONFTEST = """
from pytest_vllmbench.engines import cell_plan
from pytest_vllmbench.run import session

def _no_engine(plan):
    raise AssertionError("an engine was started for " + plan.cell.id)

session.start_engine = _no_engine
cell_plan.vllm_platform = lambda: "cpu"
"""


def test_a_gpu_only_model_on_the_cpu_build_is_skipped_naming_the_way_out(pytester):
    bench_project(pytester, NO_ENGINE_CONFTEST)
    result = pytester.runpytest_subprocess(
        "benchmarks", "-p", "no:cacheprovider", "--model=gemma-12b-4bit", "--mode=offline", "--limit=2", "-rs"
    )
    output = result.stdout.str()
    assert result.ret == pytest.ExitCode.OK, output[-3000:]
    result.assert_outcomes(skipped=1)
    assert "bitsandbytes-quantized, which needs a GPU" in output
    assert "--load-format=dummy" in output
    assert "an engine was started" not in output


NO_VLLM_ENGINE_CONFTEST = """
from pytest_vllmbench.engines import offline

class _NoEngine:
    def __init__(self, *args, **kwargs):
        raise AssertionError("an engine was started for " + str(args[:1]))

offline.OfflineEngine = _NoEngine
"""


def test_weights_neither_local_nor_cached_with_no_hub_are_a_skipped_cell_before_any_engine(pytester, monkeypatch):
    bench_project(pytester, NO_VLLM_ENGINE_CONFTEST)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(pytester.path / "empty-hf-home"))  # nothing cached
    result = pytester.runpytest_subprocess(
        "benchmarks", "-p", "no:cacheprovider", "--model=someorg/not-cached-7b", "--mode=offline", "--limit=2", "-rs"
    )
    output = result.stdout.str()
    assert result.ret == pytest.ExitCode.OK, output[-3000:]
    result.assert_outcomes(skipped=1)
    assert "neither a local folder nor in the Hugging Face cache" in output and "HF_HUB_OFFLINE is set" in output
    assert "an engine was started" not in output


def test_a_local_folder_or_a_cached_model_is_never_held_back(tmp_path, monkeypatch):
    from pytest_vllmbench.engines import hub_access

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_access.weights_unavailable(str(tmp_path)) is None
    monkeypatch.setattr(hub_access, "in_hf_cache", lambda repo_id: repo_id == "org/cached")
    assert hub_access.weights_unavailable("org/cached") is None
    assert "HF_HUB_OFFLINE is set" in (hub_access.weights_unavailable("org/elsewhere") or "")
