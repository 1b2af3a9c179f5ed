"""The decode roofline: how many tokens/s memory bandwidth allows, and how close a cell came.

Each decode step reads every weight once for the whole batch, so with B sequences in flight
    bound_tokens_per_s = B * bandwidth_bytes_per_s / weight_bytes
where weight_bytes = parameters * bytes per parameter. KV-cache reads and prefill are left out,
so the bound is optimistic and roofline_pct = measured output tokens/s / bound * 100.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from typing import Any

from pytest_vllmbench.common.packaged import data_path
from pytest_vllmbench.measure.cell_record import CellRecord

BYTES_PER_PARAM = {"bfloat16": 2.0, "float16": 2.0, "float32": 4.0, "fp8": 1.0, "bnb-4bit": 0.5, "int4": 0.5}
DEFAULT_MAX_NUM_SEQS = 256  # vLLM's default on GPUs


def load_bandwidths(overrides: Mapping[str, float] | None = None) -> dict[str, float]:
    path = data_path("gpus.toml")
    table = tomllib.loads(path.read_text(encoding="utf-8")).get("gpu_bandwidth_gbps", {})
    return {**{name: float(v) for name, v in table.items()}, **{k: float(v) for k, v in (overrides or {}).items()}}


def weights_gib(params_b: float | None, dtype: str | None) -> float | None:
    """The weights' size: parameters x bytes per parameter, None when either is unknown."""
    if not params_b or dtype not in BYTES_PER_PARAM:
        return None
    return float(params_b) * 1e9 * BYTES_PER_PARAM[dtype] / 2**30


def decode_bound_tokens_per_s(params_b: float, bytes_per_param: float, bandwidth_gbps: float, batch: int) -> float:
    weight_bytes = params_b * 1e9 * bytes_per_param
    return batch * bandwidth_gbps * 1e9 / weight_bytes


def roofline(cell: CellRecord, gpus: list[str], bandwidths: Mapping[str, float]) -> dict[str, Any]:
    """`decode_bound_tokens_per_s` and `roofline_pct` for a cell, nulls when a figure is unknown."""
    params_b, dtype = cell.params_b, cell.dtype
    engine_args = cell.engine_args or {}
    known = gpus and all(name in bandwidths for name in gpus)
    if not params_b or dtype not in BYTES_PER_PARAM or not known:
        return {"decode_bound_tokens_per_s": None, "roofline_pct": None, "roofline_batch": None}
    # tensor parallelism splits the weights over the cell's GPUs: their bandwidths add up
    bandwidth = sum(bandwidths[name] for name in gpus)
    batch = min(cell.n_requests or 1, int(engine_args.get("max_num_seqs", DEFAULT_MAX_NUM_SEQS)))
    bound = decode_bound_tokens_per_s(params_b, BYTES_PER_PARAM[dtype], bandwidth, batch)
    measured = cell.output_tokens_per_s or 0.0
    return {
        "decode_bound_tokens_per_s": round(bound, 1),
        "roofline_pct": round(measured / bound * 100, 2),
        "roofline_batch": batch,
    }
