"""A benchmark test that uses the real cell matrix and fixtures but measures no engine: figures from the env."""

FAKE_BATCH = """
import json, os

def test_batch(vllmbench_cell, benchmark):
    benchmark.pedantic(lambda: None, rounds=1)
    cell = vllmbench_cell.cell
    figures = json.loads(os.environ.get("FAKE_FIGURES", "{}")).get(cell.id, {})
    benchmark.extra_info.update({
        "vllmbench_schema": 1, "cell": cell.id, "model": cell.model.alias, "mode": cell.mode,
        "dataset": vllmbench_cell._session.dataset_info, "n_requests": 4, "n_failed": 0,
        "requests_per_s": 2.0, "projected_hours": 1.0, **figures,
    })
"""
