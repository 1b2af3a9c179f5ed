"""Sizing without weights: dummy-weight model folders, and telling 'does not fit' from other start failures."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from pytest_vllmbench import embedded, roofline
from pytest_vllmbench.registry import ModelSpec

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json")
OUT_OF_MEMORY = re.compile(
    r"out of memory|OutOfMemoryError|No available memory for the cache blocks|"
    r"less than desired|Insufficient memory|not enough (?:GPU |KV cache )?memory|KV cache is needed",
    re.IGNORECASE,
)


class CellSkip(Exception):
    """The cell cannot be measured honestly here; the message says why."""


class DoesNotFit(CellSkip):
    """The model cannot fit in the memory budget; the message is the cell's status ('does not fit in ...')."""


def dummy_folder(spec: ModelSpec) -> Path:
    """config.json from data/configs plus a tokenizer known to be the model's, built once in the cache."""
    target = embedded.cache_root() / "dummy" / spec.alias
    if (target / "config.json").is_file() and (target / "tokenizer_config.json").is_file():
        return target
    if spec.config_dir is None or not (spec.config_dir / "config.json").is_file():
        raise CellSkip(f"{spec.alias}: no architecture config shipped for dummy weights (data/configs/)")
    if spec.tokenizer_from is None:
        # dummy weights still need the model's own tokenizer to turn chat messages into tokens; another
        # model's would size a different workload
        raise CellSkip(f"{spec.alias}: no tokenizer available offline for dummy weights; not run")
    source = embedded.ensure_prepared(spec.tokenizer_from)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{spec.alias}.", dir=target.parent))
    try:
        shutil.copy2(spec.config_dir / "config.json", work / "config.json")
        for name in TOKENIZER_FILES:
            if (source / name).is_file():
                shutil.copy2(source / name, work / name)
        if target.exists():
            shutil.rmtree(target)
        os.replace(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def weights_gib(spec: ModelSpec) -> float | None:
    return roofline.weights_gib(spec.params_b, spec.dtype)


def _needs(spec: ModelSpec) -> str:
    need = weights_gib(spec)
    return f"needs ~{need:.1f} GiB for the weights alone, plus the KV cache" if need else "needs more memory"


def _budget_text(budget_gib: float, n_gpus: int) -> str:
    return f"{budget_gib:g} GiB" + (f" per GPU x {n_gpus}" if n_gpus > 1 else "")


def over_budget(spec: ModelSpec, budget_gib: float, n_gpus: int) -> str | None:
    """'does not fit in 16 GiB: needs ~X' when the weights alone exceed the budget: no engine need start."""
    need = weights_gib(spec)
    if need is None or need <= budget_gib * max(n_gpus, 1):
        return None
    return f"does not fit in {_budget_text(budget_gib, n_gpus)}: {_needs(spec)}"


def does_not_fit(message: str, spec: ModelSpec, memory_mib: list[int], utilization: float,
                 budget_gib: float | None = None, n_gpus: int = 1) -> str | None:
    """'does not fit: needs ~X GiB, has Y' ('does not fit in 16 GiB: needs ~X' under a memory budget) when the
    start failure was a lack of memory, else None."""
    if not OUT_OF_MEMORY.search(message):
        return None
    needs = _needs(spec)
    if budget_gib is not None:
        return f"does not fit in {_budget_text(budget_gib, n_gpus)}: {needs}"
    if memory_mib:  # the GPUs the cell runs on, not every GPU of the host
        total = sum(memory_mib) / 1024
        gpus = f"{len(memory_mib)} GPU" + ("s" if len(memory_mib) > 1 else "")
        return (f"does not fit: {needs}; has {utilization * total:.1f} GiB "
                f"({utilization:.0%} of {total:.0f} GiB on its {gpus})")
    return f"does not fit: {needs}; the engine could not reserve it"
