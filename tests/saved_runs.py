"""Build pytest-benchmark-shaped run files for report and gate tests (data, not an engine)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MACHINE_ID = "Linux-CPython-3.11-64bit"


def cell(name: str = "gemma-270m-offline", **figures: Any) -> dict[str, Any]:
    model, mode = name.rsplit("-", 1)
    extra = {
        "vllmbench_schema": 1,
        "cell": name,
        "model": model,
        "mode": mode,
        "params_b": 0.27,
        "engine": {"name": "vllm", "version": "0.32.0", "platform": "cpu"},
        "dataset": {"path": "data/batch_5k.jsonl", "sha256": "0" * 64},
        "n_requests": 64,
        "n_failed": 0,
        "requests_per_s": 1.5,
        "output_tokens_per_s": 144.0,
        "projected_hours": 31.4,
        "project_to": 170000,
        "load_s": 70.0,
        "wall_s": 42.0,
        "input_tokens": 12000,
        "output_tokens": 6000,
        "peak_vram_mib": None,
        "ttft_ms_p50": 100.0,
        "ttft_ms_p99": 200.0,
    }
    return extra | figures


def save_run(
    root: Path,
    number: int,
    name: str,
    cells: list[dict[str, Any]],
    when: str = "2026-11-29T10:00:00",
    gpus: list[str] | None = None,
    machine_id: str = MACHINE_ID,
    boot: str | None = None,
) -> Path:
    path = root / machine_id / f"{number:04d}_{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "machine_info": {
            "cpu": {"brand_raw": "Test CPU", "count": 2},
            "vllmbench": {"cpu_name": "Test CPU", "gpus": gpus or []} | ({} if boot is None else {"boot": boot}),
        },
        "commit_info": {},
        "datetime": when,
        "version": "5.3.1",
        "benchmarks": [
            {
                "name": f"test_batch[{c['cell']}]",
                "fullname": f"benchmarks/test_batch.py::test_batch[{c['cell']}]",
                "stats": {"mean": c["wall_s"], "min": c["wall_s"], "max": c["wall_s"]},
                "extra_info": c,
            }
            for c in cells
        ],
    }
    path.write_text(json.dumps(data))
    return path
