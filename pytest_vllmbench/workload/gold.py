"""Gold labels beside a batch file: `batch.jsonl` -> `batch.gold.jsonl`, one {custom_id, field: expected} a line."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

Gold = Mapping[str, Mapping[str, Any]]  # custom_id -> expected fields of the output's JSON


def gold_path_for(batch_path: Path) -> Path:
    """`batch_5k.jsonl` -> `batch_5k.gold.jsonl`: lines of {custom_id, field: expected, ...}."""
    return batch_path.with_name(batch_path.stem + ".gold.jsonl")


def load_gold(batch_path: Path) -> dict[str, dict[str, Any]] | None:
    path = gold_path_for(batch_path)
    if not path.is_file():
        return None
    gold = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            gold[entry.pop("custom_id")] = entry
        except (ValueError, KeyError, AttributeError):
            raise ValueError(f"{path}:{number}: expected a JSON object with a custom_id") from None
    return gold
