"""Short, stable PNG file names for the report's plots, made from what a plot shows (machine, cell, workload).

A name never depends on the cell's label in the tables nor on which other cells the report holds, so it stays
the same across regenerations; two plots that would share one name both get a digest of what tells them apart.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

NAME_MAX = 64  # characters of a file name, ".png" included
SLUG_MAX = 48


def slug(text: str, limit: int = SLUG_MAX) -> str:
    """Lowercase words joined by '-'; a longer one keeps its first words and a digest of the whole (stable, unique)."""
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"
    if len(words) <= limit:
        return words
    return words[: limit - 9].rstrip("-") + "-" + hashlib.sha256(text.encode()).hexdigest()[:8]


def machine_tag(machine: str) -> str:
    """'1 x NVIDIA H200' -> '1x-h200', 'Intel(R) Xeon(R) Processor (2 cores, no GPU)' -> 'intel-xeon-2c'."""
    text = re.sub(r"\((?:r|tm)\)|\bnvidia\b|\bprocessor\b", " ", machine, flags=re.IGNORECASE)
    text = re.sub(r"(\d+) x ", r"\1x ", text)
    text = re.sub(r"\((\d+) cores, no gpu\)", r"\1c", text, flags=re.IGNORECASE)
    return slug(re.sub(r"\(no gpu\)", " ", text, flags=re.IGNORECASE))


def workload_tag(cell: Mapping[str, Any]) -> str:
    """The dataset's file stem ('batch-5k-plain'), or the random workload's shape ('random-512-256-1000')."""
    dataset = cell.get("dataset")
    path = str(dataset.get("path") or "") if isinstance(dataset, Mapping) else ""
    return Path(path).stem if path and not path.startswith("random:") else path


def cell_tags(cell: Mapping[str, Any]) -> list[str]:
    """How the cell differs from the same cell id on the same machine: GPU split and memory budget."""
    args = cell.get("engine_args") or {}
    tags = [
        f"{short}{args[key]}"
        for key, short in (("tensor_parallel_size", "tp"), ("pipeline_parallel_size", "pp"))
        if int(args.get(key) or 1) > 1
    ]
    budget = cell.get("gpu_memory_budget_gib")
    return tags + ([f"{budget:g}gib"] if isinstance(budget, int | float) else [])


def file_name(kind: str, *parts: str) -> str:
    """'KIND-part-part.png', at most NAME_MAX characters."""
    return f"{kind}-{slug(' '.join(part for part in parts if part), NAME_MAX - len(kind) - 5)}.png"


def throughput_name(machine: str) -> str:
    return file_name("throughput", machine_tag(machine))


def cdf_name(machine: str, cell: Mapping[str, Any]) -> str:
    return file_name("cdf", machine_tag(machine), str(cell.get("cell") or ""), *cell_tags(cell), workload_tag(cell))


def sweep_name(machine: str, points: list[Mapping[str, Any]]) -> str:
    first = points[0] if points else {}
    name = str(first.get("sweep") or first.get("cell") or "")
    return file_name("sweep", machine_tag(machine), name, *cell_tags(first), workload_tag(first))


def with_digest(name: str, identity: Any) -> str:
    """`name` with a digest of `identity` before '.png', still at most NAME_MAX characters."""
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:8]
    stem = name.removesuffix(".png")[: NAME_MAX - 4 - 9].rstrip("-")
    return f"{stem}-{digest}.png"
