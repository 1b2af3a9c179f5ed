"""The strict schema of the model registry (models.toml): every key known, every value's type checked, before any
ModelSpec is built. A problem is a UsageError naming the file, the line, the key, what was expected and what was found.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NoReturn

from pytest_vllmbench.common.cut import shown
from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.config.toml_lines import Keys, dotted, where_written


def _is_text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_string(value: object) -> bool:
    return isinstance(value, str)


def _is_bool(value: object) -> bool:
    return isinstance(value, bool)


def _is_table(value: object) -> bool:
    return isinstance(value, Mapping)


def _is_positive_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


_TEXT = "a non-empty string"
# A model entry's keys: what each expects, and its check.
MODEL_KEYS: dict[str, tuple[str, Callable[[object], bool]]] = {
    "hf_id": (f"a Hugging Face id or a local folder ({_TEXT})", _is_text),
    "ollama": (f"an Ollama tag ({_TEXT})", _is_text),
    "embedded": ("true or false", _is_bool),
    "params_b": ("a positive number (billions of parameters)", _is_positive_number),
    "dtype": (f"a dtype name ({_TEXT})", _is_text),
    "notes": ("a string", _is_string),
    "engine_args": ("a table", _is_table),
    "config": (f"a folder relative to the registry ({_TEXT})", _is_text),
    "tokenizer": (f"an offline tokenizer source ({_TEXT})", _is_text),
    "tokenizer_from": (f"an embedded model's alias ({_TEXT})", _is_text),
}
TOP_KEYS = ("models", "platform")
PLATFORM_KEYS = ("engine_args",)
ENGINE_ARG = "a string, finite number, boolean, array or table"


class _Bad(Exception):
    """One problem at `keys`; check_registry adds the file and the line."""

    def __init__(self, keys: Keys, problem: str) -> None:
        super().__init__(problem)
        self.keys = keys
        self.problem = problem


def check_registry(raw: Mapping[str, object], text: str, path: Path) -> None:
    """Every key and value of the parsed registry `raw`, read from `text` at `path`; a UsageError on the first
    problem."""
    try:
        _check_top(raw)
    except _Bad as bad:
        raise UsageError(
            f"{where_written(path, text, bad.keys)}: model registry key {dotted(bad.keys)}: {bad.problem}"
        ) from None


def _check_top(raw: Mapping[str, object]) -> None:
    _check_known(raw, (), TOP_KEYS)
    models = _table(raw.get("models", {}), ("models",))
    platforms = _table(raw.get("platform", {}), ("platform",))
    for alias, entry in models.items():
        _check_model(_table(entry, ("models", alias)), ("models", alias))
    for name, platform in platforms.items():
        _check_platform(_table(platform, ("platform", name)), ("platform", name))


def _check_model(entry: Mapping[str, object], keys: Keys) -> None:
    _check_known(entry, keys, tuple(MODEL_KEYS))
    if "hf_id" not in entry:
        _fail((*keys, "hf_id"), f"expected {MODEL_KEYS['hf_id'][0]}, found no such key")
    for key, value in entry.items():
        expected, is_valid = MODEL_KEYS[key]
        if not is_valid(value):
            _fail_found((*keys, key), expected, value)
    if "engine_args" in entry:
        _check_engine_args(_table(entry["engine_args"], (*keys, "engine_args")), (*keys, "engine_args"))


def _check_platform(platform: Mapping[str, object], keys: Keys) -> None:
    _check_known(platform, keys, PLATFORM_KEYS)
    if "engine_args" in platform:
        _check_engine_args(_table(platform["engine_args"], (*keys, "engine_args")), (*keys, "engine_args"))


def _check_engine_args(table: Mapping[str, object], keys: Keys) -> None:
    for key, value in table.items():
        _check_engine_arg(value, (*keys, key))


def _check_engine_arg(value: object, keys: Keys) -> None:
    # Dates and times are the TOML values vLLM's flags cannot carry: json.dumps (vllm_cli.cli_flags) rejects them;
    # nan and inf it writes as NaN and Infinity, which is not JSON.
    if isinstance(value, Mapping):
        _check_engine_args(value, keys)
    elif isinstance(value, list):
        for item in value:
            _check_engine_arg(item, keys)
    elif not isinstance(value, (str, int, float, bool)) or (isinstance(value, float) and not math.isfinite(value)):
        _fail_found(keys, ENGINE_ARG, value)


def _check_known(table: Mapping[str, object], keys: Keys, known: tuple[str, ...]) -> None:
    for key in table:
        if key not in known:
            _fail((*keys, key), f"unknown key; known keys: {', '.join(known)}")


def _table(value: object, keys: Keys) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        _fail_found(keys, "a table", value)
    return value


def _fail_found(keys: Keys, expected: str, value: object) -> NoReturn:
    _fail(keys, f"expected {expected}, found {shown(value)} ({_toml_type(value)})")


def _fail(keys: Keys, problem: str) -> NoReturn:
    raise _Bad(keys, problem)


def _toml_type(value: object) -> str:
    kinds: list[tuple[type, str]] = [
        (bool, "a boolean"),  # before int: a bool is an int to isinstance
        (int, "an integer"),
        (float, "a float"),
        (str, "a string"),
        (list, "an array"),
        (dict, "a table"),
        (datetime.datetime, "a date-time"),  # before date: a datetime is a date to isinstance
        (datetime.date, "a date"),
        (datetime.time, "a time"),
    ]
    return next((name for kind, name in kinds if isinstance(value, kind)), type(value).__name__)
