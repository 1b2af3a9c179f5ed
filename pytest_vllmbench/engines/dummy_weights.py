"""Sizing without weights: where a dummy-weight model's config and tokenizer come from, the random
checkpoint for bitsandbytes cells, and telling 'does not fit' from other start failures."""

from __future__ import annotations

import fcntl
import json
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_vllmbench.common.files import folder_built_in_place, sha256_of
from pytest_vllmbench.common.notices import notice
from pytest_vllmbench.config.registry import ModelSpec
from pytest_vllmbench.engines import embedded_model, tokenizer_sources
from pytest_vllmbench.engines.base import CellSkip
from pytest_vllmbench.measure import roofline

DUMMY_LABEL = "dummy weights"
RANDOM_4BIT_LABEL = "bitsandbytes 4-bit, in-flight from random weights"
# any one of these beside config.json is a tokenizer vLLM can load
TOKENIZER_MARKERS = ("tokenizer.json", "tokenizer.model", "tokenizer.model.v3", "tekken.json", "vocab.json")
MISTRAL_ONLY = ("tokenizer.model.v3", "tekken.json")  # read with tokenizer_mode="mistral"
HUB_FILES = [
    "config.json",
    "generation_config.json",
    "tokenizer*",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "chat_template.*",
    "tekken.json",
]
OUT_OF_MEMORY = re.compile(
    r"out of memory|OutOfMemoryError|No available memory for the cache blocks|"
    r"less than desired|Insufficient memory|not enough (?:GPU |KV cache )?memory|KV cache is needed",
    re.IGNORECASE,
)


# vLLM's message when the weights fit but one max-length sequence's KV cache does not
KV_SHORTFALL = re.compile(
    r"max seq len \((\d+)\), \(([\d.]+) GiB KV cache is needed, which is larger than the "
    r"available KV cache memory \(([\d.]+) GiB\)"
)


@dataclass(frozen=True)
class DummyModel:
    """What vLLM loads for a dummy-weight cell, and where its config and tokenizer came from."""

    path: str
    source: str  # recorded as the cell's dummy_source
    engine_args: dict[str, Any] = field(default_factory=dict)  # e.g. tokenizer_mode for Mistral's files


def is_dummy(args: dict[str, Any]) -> bool:
    return args.get("load_format") == "dummy"


def is_bitsandbytes(args: dict[str, Any]) -> bool:
    return args.get("quantization") == "bitsandbytes"


def weights_label(args: dict[str, Any]) -> str:
    """How a dummy-weight cell's weights are labelled wherever it is shown."""
    return RANDOM_4BIT_LABEL if is_bitsandbytes(args) else DUMMY_LABEL


def vllm_args(args: dict[str, Any], model: DummyModel) -> dict[str, Any]:
    """The engine args vLLM gets: bitsandbytes cells load the random checkpoint instead of dummy weights,
    since vLLM's bitsandbytes loader needs weight files."""
    adjusted = {**model.engine_args, **args}
    if is_bitsandbytes(args):
        adjusted.pop("load_format", None)
    return adjusted


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in TOKENIZER_MARKERS)


def _own_folder(folder: Path, how: str) -> DummyModel:
    mistral_only = not (folder / "tokenizer.json").is_file() and any((folder / n).is_file() for n in MISTRAL_ONLY)
    return DummyModel(str(folder), how, {"tokenizer_mode": "mistral"} if mistral_only else {})


def _hub_snapshot(repo_id: str) -> Path:
    """The model's config and tokenizer from the hub (or its local cache), never its weights."""
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, allow_patterns=HUB_FILES))


def resolve_dummy(spec: ModelSpec) -> DummyModel:
    """The model's own config + tokenizer (local folder, or hub id when the hub answers), else the shipped config
    with the registry's offline tokenizer; CellSkip naming what is missing when neither is at hand."""
    if spec.embedded:
        return DummyModel(str(embedded_model.ensure_prepared(spec.alias)), f"embedded model {spec.alias}")
    local = Path(spec.source).expanduser()
    if local.is_dir():
        missing = [
            what
            for what, ok in (
                ("config.json", (local / "config.json").is_file()),
                ("tokenizer file (" + ", ".join(TOKENIZER_MARKERS) + ")", _has_tokenizer(local)),
            )
            if not ok
        ]
        if not missing:
            return _own_folder(local, f"own config and tokenizer: local folder {local}")
        raise CellSkip(
            f"{spec.alias}: dummy weights need the model's config.json and tokenizer; {local} has no "
            f"{' and no '.join(missing)}: copy them from the model's repository into that folder"
        )
    hub_error = ""
    try:
        snapshot = _hub_snapshot(spec.source)
        if (snapshot / "config.json").is_file() and _has_tokenizer(snapshot):
            return _own_folder(snapshot, f"own config and tokenizer: hub {spec.source}")
        hub_error = "the hub's files hold no config.json or tokenizer"
    except Exception as exc:  # offline, gated, unknown id: any of them means "not from the hub"
        hub_error = type(exc).__name__
    if spec.config_dir is not None and (spec.config_dir / "config.json").is_file() and spec.tokenizer:
        folder = prepare_shipped(spec)
        return DummyModel(
            str(folder),
            f"shipped config data/configs/{spec.config_dir.name} + tokenizer "
            f"{spec.tokenizer} (not from the hub: {hub_error})",
            tokenizer_sources.engine_args_for(spec.tokenizer),
        )
    shipped = (
        "a shipped config without an offline tokenizer (set `tokenizer` in data/models.toml)"
        if spec.config_dir is not None
        else "no shipped config in data/configs/"
    )
    raise CellSkip(
        f"{spec.alias}: no config and tokenizer for dummy weights: the hub did not give them for {spec.source} "
        f"({hub_error}), and the registry has {shipped}. Pass --model=/path/to/folder holding the model's "
        "config.json and tokenizer files, or run where the hub is reachable"
    )


def shipped_source(spec: ModelSpec) -> str:
    assert spec.config_dir is not None
    config_hash = sha256_of(spec.config_dir / "config.json")
    return f"config data/configs/{spec.config_dir.name} (sha256 {config_hash}); tokenizer {spec.tokenizer}"


def prepare_shipped(spec: ModelSpec, force: bool = False) -> Path:
    """config.json from data/configs plus the registry's offline tokenizer, built once in the cache with a
    manifest; rebuilt when the config or the tokenizer source changes."""
    if spec.config_dir is None or not spec.tokenizer:
        raise CellSkip(f"{spec.alias}: the registry gives no shipped config and tokenizer for dummy weights")
    target = embedded_model.cache_root() / "dummy" / spec.alias
    source = shipped_source(spec)
    with _locked(target):
        if embedded_model.folder_is_whole(target, source) and not force:
            return target
        with folder_built_in_place(target) as work:
            _write_shipped(spec, work, source)
    return target


def _write_shipped(spec: ModelSpec, work: Path, source: str) -> None:
    assert spec.config_dir is not None and spec.tokenizer is not None
    shutil.copy2(spec.config_dir / "config.json", work / "config.json")
    try:
        tokenizer_sources.write_tokenizer(spec.tokenizer, work)
    except tokenizer_sources.TokenizerUnavailable as exc:
        raise CellSkip(f"{spec.alias}: its tokenizer ({spec.tokenizer}) is not available: {exc}") from None
    embedded_model.write_manifest(work, source)


def random_checkpoint(model: DummyModel, spec: ModelSpec, force: bool = False) -> DummyModel:
    """The dummy folder plus a random bf16 checkpoint in the model's shape (for in-flight bitsandbytes)."""
    base = Path(model.path)
    target = embedded_model.cache_root() / "random" / spec.alias
    # what the checkpoint depends on (not how the base folder was found, so `prepare-model` and a run agree)
    source = f"random bf16 weights for config sha256 {sha256_of(base / 'config.json')}, tokenizer from {base}"
    with _locked(target):
        if force or not embedded_model.folder_is_whole(target, source):
            with folder_built_in_place(target) as work:
                _write_random(base, work, source, spec.alias)
    return DummyModel(str(target), f"{model.source}; random bf16 checkpoint", model.engine_args)


def _write_random(base: Path, work: Path, source: str, alias: str) -> None:
    from pytest_vllmbench.engines.random_checkpoint import write_random_checkpoint

    for item in base.iterdir():
        weights = item.name.endswith(".safetensors") or item.name == "model.safetensors.index.json"
        if item.is_file() and item.name != embedded_model.MANIFEST and not weights:
            shutil.copy2(item, work / item.name)
    config = json.loads((work / "config.json").read_text())
    config.pop("quantization_config", None)  # the random weights are plain bf16; vLLM quantizes them
    (work / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    notice(f"writing a random bf16 checkpoint for {alias}")
    write_random_checkpoint(work, work)
    embedded_model.write_manifest(work, source, unhashed_suffix=".safetensors")


@contextmanager
def _locked(target: Path) -> Iterator[None]:
    """One builder at a time per folder (xdist workers may ask for the same model's folder at once)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def for_cell(found: DummyModel, spec: ModelSpec, args: dict[str, Any], has_gpu: bool) -> DummyModel:
    """What a dummy-weight cell loads: the model's config and tokenizer, and for bitsandbytes cells the random
    checkpoint beside them (vLLM's bitsandbytes loader needs weight files)."""
    if not is_bitsandbytes(args):
        return found
    if not has_gpu:
        raise CellSkip(f"{spec.alias}: bitsandbytes 4-bit runs on NVIDIA GPUs only in vLLM; not run here")
    return random_checkpoint(found, spec)


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


def does_not_fit(
    message: str,
    spec: ModelSpec,
    memory_mib: list[int],
    utilization: float,
    budget_gib: float | None = None,
    n_gpus: int = 1,
) -> str | None:
    """'does not fit: needs ~X GiB, has Y' ('does not fit in 16 GiB: needs ~X' under a memory budget) when the
    start failure was a lack of memory, else None."""
    if not OUT_OF_MEMORY.search(message):
        return None
    needs = _needs(spec)
    if kv := KV_SHORTFALL.search(message):
        needs = needs.replace(
            "plus the KV cache", f"plus {kv[2]} GiB of KV cache for max_model_len {kv[1]} ({kv[3]} GiB was left for it)"
        )
    if budget_gib is not None:
        return f"does not fit in {_budget_text(budget_gib, n_gpus)}: {needs}"
    if memory_mib:  # the GPUs the cell runs on, not every GPU of the host
        total = sum(memory_mib) / 1024
        gpus = f"{len(memory_mib)} GPU" + ("s" if len(memory_mib) > 1 else "")
        return (
            f"does not fit: {needs}; has {utilization * total:.1f} GiB "
            f"({utilization:.0%} of {total:.0f} GiB on its {gpus})"
        )
    return f"does not fit: {needs}; the engine could not reserve it"
