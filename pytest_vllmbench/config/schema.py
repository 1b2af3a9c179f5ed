"""The strict schema of [tool.vllmbench]: every key known, every value's type checked, before anything runs.

One checker for the pytest session and the `vllmbench` CLI. Values keep their TOML types here; the option
table's resolution (settings.resolve) then checks ranges and meanings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any, Protocol

from pytest_vllmbench.common.cut import key_text
from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.config.modes import mode_names
from pytest_vllmbench.config.score_weights import check_weights
from pytest_vllmbench.config.toml_lines import where_written

TABLES = ("weights", "flexibility", "gpu_bandwidth_gbps")

# Options whose TOML value is not told by their default (None) or may take two shapes.
_KINDS = {
    "limit": "int",
    "warmup": "int",  # default None: one round on a GPU, none on the CPU
    "sample": "int",
    "max_tokens": "int",
    "concurrency": "ints",  # 8 or [1, 16] or "1,16"
    "api_server_count": "ints",  # 4 or [1, 4] or "1,4"
    "request_rate": "rates",  # 2.5 or [2, "inf"] or "2,8,inf"
    "gpu_memory": "size",  # "16GiB" or a number of bytes
    "gpu_hourly_cost": "price",  # range checked here too: `vllmbench report` reads it without settings.resolve
    "vllmbench_baseline": "run",  # "latest", a saved run's name, or its number
}


class OptionLike(Protocol):
    @property
    def key(self) -> str: ...

    @property
    def default(self) -> Any: ...

    @property
    def multi(self) -> bool: ...

    @property
    def flag(self) -> bool: ...


def kind_of(option: OptionLike) -> str:
    if option.key in _KINDS:
        return _KINDS[option.key]
    if option.flag:
        return "bool"
    if option.multi:
        return "strings"
    default = option.default
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    return "str"


# Where a key is written: `path:line` of the key below [tool.vllmbench], else `path` alone.
Place = Callable[..., str]


def check_tool_table(table: object, options: Iterable[OptionLike], source: str, text: str = "") -> dict[str, Any]:
    """The [tool.vllmbench] table with keys in underscores; a UsageError naming file, line and key otherwise.

    `text` is the file's text, for the lines (tomllib gives no positions): without it, messages name the file only.
    """
    place = _places(source, text)
    if not isinstance(table, Mapping):
        raise UsageError(f"{place()}: [tool.vllmbench] must be a table, got {_show(table)}")
    kinds = {option.key: kind_of(option) for option in options}
    checked: dict[str, Any] = {}
    for raw_key, value in table.items():
        key = str(raw_key).replace("-", "_")
        label = f"[tool.vllmbench] {key_text(str(raw_key))}"
        where = f"{place(raw_key)}: {label}"
        if key in TABLES:
            checked[key] = _check_table(key, value, label, partial(place, raw_key))
        elif key in kinds:
            _check_value(kinds[key], value, where)
            checked[key] = value
        else:
            raise UsageError(f"{where}: unknown key; known keys: {', '.join(sorted([*kinds, *TABLES]))}")
    return checked


def _places(source: str, text: str) -> Place:
    def place(*keys: str) -> str:
        return where_written(source, text, ("tool", "vllmbench", *keys))

    return place


def _check_value(kind: str, value: object, where: str) -> None:
    if kind == "strings":
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(item, str) and item.strip() for item in items):
            raise UsageError(f"{where} expects a non-empty string or a list of them, got {_show(value)}")
        return
    if kind == "ints" and (isinstance(value, str) or _is_int(value)):
        return
    if kind == "ints" and isinstance(value, list) and value and all(_is_int(item) for item in value):
        return
    if kind == "rates" and (isinstance(value, str) or _is_number(value)):
        return
    if kind == "rates" and isinstance(value, list) and value and all(_is_rate(item) for item in value):
        return
    if kind in ("size", "run") and (isinstance(value, str) or _is_int(value)):
        return
    expected = {
        "bool": ("true or false", isinstance(value, bool)),
        "int": ("a whole number", _is_int(value)),
        "float": ("a finite number", _is_number(value)),
        "price": ("a finite number >= 0", _is_price(value)),
        "str": ("a string", isinstance(value, str)),
        "run": ("a saved run's name or number", False),
        "size": ('a size such as "16GiB" or a number of bytes', False),
        "ints": ('a whole number, a list of them or a text such as "1,16"', False),
        "rates": ('a number, a list of them or a text such as "2,8,inf"', False),
    }
    what, ok = expected[kind]
    if not ok:
        raise UsageError(f"{where} expects {what}, got {_show(value)}")


def _check_table(key: str, value: object, label: str, place: Place) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise UsageError(f"{place()}: {label} must be a table ([tool.vllmbench.{key}]), got {_show(value)}")
    if key == "weights":
        try:
            return check_weights(dict(value))
        except UsageError as exc:
            raise UsageError(f"{place(*_first_bad_weight(value))}: {label}: {exc}") from None
    for name, number in value.items():
        if key == "flexibility" and name not in mode_names():
            raise UsageError(f"{place(name)}: {label}: unknown mode {name!r}; known: {', '.join(mode_names())}")
        low, high = (0.0, 1.0) if key == "flexibility" else (1.0, math.inf)
        if not _is_number(number) or not low <= number <= high:
            bound = "in [0, 1]" if key == "flexibility" else ">= 1"
            raise UsageError(f"{place(name)}: {label}.{name} expects a number {bound}, got {_show(number)}")
    return {str(name): float(number) for name, number in value.items()}


def _first_bad_weight(weights: Mapping[str, object]) -> tuple[str, ...]:
    """The first weight refused on its own, as the keys of its line; none when only their sum is wrong (all zero)."""
    for name, weight in weights.items():
        try:
            check_weights({name: weight})
        except UsageError:
            return (str(name),)
    return ()


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(float(value))  # type: ignore[arg-type]


def _is_price(value: object) -> bool:
    return _is_number(value) and isinstance(value, int | float) and value >= 0


def _is_rate(value: object) -> bool:
    return _is_number(value) or value in ("inf", math.inf)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
