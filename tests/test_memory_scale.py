"""The core of benchmarks/scripts/memory_scale.py on small sizes: the repeated batch and the measured cells."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from pytest_vllmbench.workload.batch_file import open_batch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "scripts" / "memory_scale.py"
spec = importlib.util.spec_from_file_location("memory_scale", SCRIPT)
assert spec is not None and spec.loader is not None
memory_scale = importlib.util.module_from_spec(spec)
spec.loader.exec_module(memory_scale)


def test_the_sample_repeated_is_a_valid_batch_with_unique_ids(tmp_path):
    batch = memory_scale.write_repeated(memory_scale.SAMPLE, 5_003, tmp_path / "b.jsonl")
    requests = open_batch(batch)  # refuses a repeated custom_id
    assert len(requests) == 5_003
    listed = list(requests)
    assert listed[-1].custom_id.endswith("-1") and listed[-1].body == listed[2].body  # 5,002 = 5,000 + 2


def test_each_size_is_measured_in_its_own_process_and_the_peaks_compared(tmp_path):
    figures = memory_scale.measure([200, 400], 2, tmp_path, concurrency="16")
    small, large = figures["cells"]
    assert (small["requests"], large["requests"]) == (200, 400)
    assert small["failed"] == large["failed"] == 0
    assert small["peak_rss_mib"] > 0 and large["requests_per_s"] > 0
    assert figures["peak_ratio"] == round(large["peak_rss_mib"] / small["peak_rss_mib"], 3)
    assert list(tmp_path.iterdir()) == []  # each size's batch file is removed once measured
