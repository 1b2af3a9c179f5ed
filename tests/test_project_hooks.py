"""A project's scoring and quality hooks that raise or answer junk: the run is kept, the cell says what is wrong."""

import json

import pytest
from bench_project import bench_project

from tests.test_fake_pipeline import FAKE_ENGINE_CONFTEST

ARGS = ["benchmarks", "-p", "no:cacheprovider", "--model=gemma-270m", "--mode=offline", "--mode=server",
        "--limit=2", "--max-tokens=4", "--warmup=0", "--benchmark-save=h", "--report=none"]  # fmt: skip


def _run(pytester, monkeypatch, hooks: str):
    bench_project(pytester, FAKE_ENGINE_CONFTEST + hooks)
    monkeypatch.setenv("FAKE_E2EL_S", "0.01")
    result = pytester.runpytest_subprocess(*ARGS)
    output = result.stdout.str() + result.stderr.str()
    runs = list((pytester.path / ".benchmarks").glob("*/*_h.json"))
    return result.ret, output, json.loads(runs[0].read_text()) if runs else None


@pytest.mark.parametrize(
    "answer", ["1 / 0", "'junk'", "[]", "[{'x': 1}] * len(cells)", "[{'score': 'high', 'components': {}}] * len(cells)",
               "[{'score': 0.5}] * len(cells)", "sys.exit(3)"],
)  # fmt: skip
def test_a_scoring_hook_that_raises_or_answers_junk_keeps_the_run_with_the_built_in_score(
    pytester, monkeypatch, answer
):
    hooks = f"\nimport sys\n\ndef pytest_vllmbench_score(cells, weights):\n    return {answer}\n"
    ret, output, saved = _run(pytester, monkeypatch, hooks)
    assert ret == pytest.ExitCode.OK, output[-3000:]
    assert "pytest_vllmbench_score hook's answer was not used" in output and "Traceback" not in output
    assert saved is not None and sorted(saved["vllmbench"]["scores"]) == ["gemma-270m-offline", "gemma-270m-server"]
    assert all(isinstance(bench["extra_info"]["score"], float) for bench in saved["benchmarks"])


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ("{'quality_accuracy': 'high'}", "quality_accuracy must be a finite number or None, not 'high'"),
        ("{'quality_accuracy': float('nan')}", "quality_accuracy must be a finite number or None, not nan"),
        ("{'cell': 'gemma-270m-offline'}", "may return only quality_* figures, not ['cell']"),
        ("{'requests_per_s': 1e12}", "may return only quality_* figures, not ['requests_per_s']"),
        ("{'quality_bogus': 1}", "['quality_bogus'] that CellRecord does not declare"),
        ("['quality_accuracy']", "returned a list, not a dict of quality_* figures or None"),
    ],
)
def test_a_quality_hook_answer_that_is_not_quality_figures_fails_its_cell_and_keeps_the_others(
    pytester, monkeypatch, answer, why
):
    hooks = (
        "\n\ndef pytest_vllmbench_quality(cell_id, requests, records, gold):\n"
        f"    return {answer} if cell_id.endswith('server') else None\n"
    )
    ret, output, saved = _run(pytester, monkeypatch, hooks)
    assert ret == pytest.ExitCode.TESTS_FAILED, output[-3000:]
    assert why in output, output[-3000:]
    assert saved is not None and [bench["param"] for bench in saved["benchmarks"]] == ["gemma-270m-offline"]
    [failed] = saved["vllmbench"]["unrun"]
    assert failed["cell"] == "gemma-270m-server" and failed["status"].startswith("failed: the pytest_vllmbench_quality")
