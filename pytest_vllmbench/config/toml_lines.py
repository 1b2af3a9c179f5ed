"""Where a key is written in a TOML file: tomllib gives no positions, so messages about a key find its line here
(the model registry's and [tool.vllmbench]'s checks)."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from pytest_vllmbench.common.cut import SHOWN_CHARS, shown

Keys = tuple[str, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_KEY_LINE = re.compile(rf"(?P<key>{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)\s*=")
_HEADER_LINE = re.compile(r"\[\[?(?P<key>[^\[\]]+)\]\]?\s*(?:#.*)?")


def dotted(keys: Keys) -> str:
    """`keys` as a TOML dotted key: bare parts as they are, others quoted (and cut when long)."""
    return ".".join(key if _BARE_KEY.fullmatch(key) and len(key) <= SHOWN_CHARS else shown(key) for key in keys)


def where_written(path: str | Path, text: str, keys: Keys) -> str:
    """'PATH:LINE' of `keys` in `text` (see line_of), or 'PATH' where no part of them is written."""
    line = line_of(text, keys)
    return f"{path}:{line}" if line is not None else str(path)


def line_of(text: str, keys: Keys) -> int | None:
    """The 1-based line of `text` that defines `keys` (its table header or its `key =` line), else the first line
    inside it, else the same for its nearest written parent; None when no part is written. Best effort:
    tomllib gives no positions, so this scans the lines again."""
    places = _written_keys_of(text)
    for size in range(len(keys), 0, -1):
        prefix = keys[:size]
        exact = [number for number, written in places if written == prefix]
        inside = [number for number, written in places if written[:size] == prefix]
        if exact or inside:
            return (exact or inside)[0]
    return None


@cache
def _written_keys_of(text: str) -> tuple[tuple[int, Keys], ...]:
    """_written_keys, once per text: a file's messages ask for several keys' lines."""
    return tuple(_written_keys(text))


def _written_keys(text: str) -> Iterator[tuple[int, Keys]]:
    """(line number, full key path) for each table header and each `key =` line, outside multi-line strings."""
    table: Keys = ()
    open_string: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        was_open, open_string = open_string, _multiline_string_after(line, open_string)
        if was_open:
            continue
        stripped = line.strip()
        header = _HEADER_LINE.fullmatch(stripped)
        key_line = _KEY_LINE.match(stripped)
        if header and (keys := _parse_key(header["key"])) is not None:
            table = keys
            yield number, table
        elif key_line and (keys := _parse_key(key_line["key"])) is not None:
            yield number, (*table, *keys)


def _multiline_string_after(line: str, open_string: str | None) -> str | None:
    """The multi-line string delimiter still open after `line` (an odd count of it opens or closes one)."""
    for delimiter in ('"""', "'''"):
        if open_string in (None, delimiter) and line.count(delimiter) % 2:
            return None if open_string == delimiter else delimiter
    return open_string


def _parse_key(text: str) -> Keys | None:
    """A dotted key's parts, unquoted by tomllib itself; None when `text` is no key."""
    try:
        node: object = tomllib.loads(f"{text} = 0")
    except tomllib.TOMLDecodeError:
        return None
    parts: list[str] = []
    while isinstance(node, dict):
        ((key, node),) = node.items()
        parts.append(key)
    return tuple(parts)
