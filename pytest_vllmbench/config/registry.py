"""The model registry: aliases -> Hugging Face id, Ollama tag and default engine args."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.common.packaged import data_path
from pytest_vllmbench.config.registry_schema import check_registry


@dataclass(frozen=True)
class ModelSpec:
    alias: str
    source: str  # what vLLM loads: HF id or local folder
    ollama: str | None = None
    embedded: bool = False
    params_b: float | None = None
    dtype: str | None = None
    notes: str = ""
    engine_args: dict[str, Any] = field(default_factory=dict)
    config_dir: Path | None = None  # architecture config for dummy-weight sizing
    tokenizer: str | None = None  # offline tokenizer source for the shipped config (tokenizer_sources.py)


@dataclass(frozen=True)
class Registry:
    models: dict[str, ModelSpec]
    platform_engine_args: dict[str, dict[str, Any]]

    def resolve(self, name: str) -> ModelSpec:
        """An alias, an Ollama tag, an HF id (`org/name`) or a local path."""
        if name in self.models:
            return self.models[name]
        for spec in self.models.values():
            if name in (spec.ollama, spec.source):
                return spec
        if Path(name).exists() or _looks_like_hf_id(name):
            return ModelSpec(alias=_alias_for_raw(name), source=name)
        known = ", ".join(sorted(self.models))
        raise UsageError(
            f"unknown model {name!r}: use an alias ({known}), an Ollama tag listed in the "
            "registry, a Hugging Face id (org/name) or a local model folder"
        )

    def resolve_served(self, name: str) -> ModelSpec:
        """Endpoint mode: the registry is a convenience. A name it knows maps to what it knows; any other
        name is what the endpoint serves (`llama3.2:3b`, a llama.cpp GGUF path, `my-finetune`), sent as is
        and checked by the endpoint's own model list. Its size and dtype are then unknown (None)."""
        try:
            return self.resolve(name)
        except UsageError:
            return ModelSpec(alias=_alias_for_raw(name), source=name)

    def engine_args_for(self, spec: ModelSpec, platform: str) -> dict[str, Any]:
        return {**self.platform_engine_args.get(platform, {}), **spec.engine_args}


def _embedded_tokenizer(alias: str | None) -> str | None:
    """The older `tokenizer_from = "ALIAS"` key: the tokenizer of an embedded model."""
    return f"embedded:{alias}" if alias else None


def _looks_like_hf_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and ":" not in name and " " not in name


def _alias_for_raw(name: str) -> str:
    """A cell id and file-name safe alias: the last path part, odd characters as `_`."""
    last = Path(name.rstrip("/")).name or name
    return re.sub(r"[^A-Za-z0-9._:+-]+", "_", last).strip("_") or "model"


def default_registry_path() -> Path:
    return data_path("models.toml")


def load_registry(path: Path | None = None) -> Registry:
    """The registry at `path` (the shipped one by default), checked whole first: see registry_schema."""
    path = path or default_registry_path()
    try:
        text = path.read_text(encoding="utf-8")
        raw = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the model registry: {exc}") from exc
    check_registry(raw, text, path)
    models = {}
    for alias, entry in raw.get("models", {}).items():
        models[alias] = ModelSpec(
            alias=alias,
            source=entry["hf_id"],
            ollama=entry.get("ollama"),
            embedded=entry.get("embedded", False),
            params_b=entry.get("params_b"),
            dtype=entry.get("dtype"),
            notes=entry.get("notes", ""),
            engine_args=dict(entry.get("engine_args", {})),
            config_dir=path.parent / entry["config"] if "config" in entry else None,
            tokenizer=entry.get("tokenizer") or _embedded_tokenizer(entry.get("tokenizer_from")),
        )
    platforms = {name: dict(table.get("engine_args", {})) for name, table in raw.get("platform", {}).items()}
    return Registry(models=models, platform_engine_args=platforms)
