"""benchmarks/scripts/parity_summary.py: a PART=clients folder's cells pooled by client process count, with the ratio."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "scripts" / "parity_summary.py"
spec = importlib.util.spec_from_file_location("parity_summary", SCRIPT)
assert spec is not None and spec.loader is not None
parity_summary = importlib.util.module_from_spec(spec)
spec.loader.exec_module(parity_summary)


def _cell(folder: Path, name: str, rates: list[float]) -> None:
    rounds = [{"requests_per_s": rate} for rate in rates]
    (folder / name).write_text(json.dumps({"benchmarks": [{"extra_info": {"rounds": rounds}}]}))


def test_client_pairs_pool_each_process_count_over_its_cells_and_give_the_ratio_to_one(tmp_path):
    _cell(tmp_path, "0001_parity-h100-clients1-1.json", [90.0, 100.0])
    _cell(tmp_path, "0002_parity-h100-clients2-1.json", [110.0, 120.0])
    _cell(tmp_path, "0003_parity-h100-clients2-2.json", [115.0, 125.0])
    _cell(tmp_path, "0004_parity-h100-clients1-2.json", [95.0, 105.0])
    summary = parity_summary.main(tmp_path)
    assert summary["methods"]["clients1"]["values"] == [90.0, 100.0, 95.0, 105.0]
    assert summary["methods"]["clients2"]["n"] == 4
    assert summary["ratio_clients2_vs_clients1"] == {"mean": 1.205, "range_low": 1.048, "range_high": 1.389}
    assert "ratio_owned_vs_bench" not in summary  # no parity methods in this folder


def test_a_parity_folder_keeps_its_two_ratios_to_vllm_bench_serve(tmp_path):
    (tmp_path / "bench-1.json").write_text(json.dumps({"request_throughput": 100.0}))
    (tmp_path / "bench-2.json").write_text(json.dumps({"request_throughput": 110.0}))
    _cell(tmp_path, "0001_parity-endpoint-1.json", [105.0])
    _cell(tmp_path, "0002_parity-owned.json", [95.0, 100.0])
    summary = parity_summary.main(tmp_path)
    assert summary["ratio_endpoint_vs_bench"] == {"mean": 1.0, "range_low": 0.955, "range_high": 1.05}
    assert summary["ratio_owned_vs_bench"]["mean"] == 0.929
    assert not any(key.startswith("ratio_clients") for key in summary)
