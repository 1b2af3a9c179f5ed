"""The one strict reader of a saved cell: each field checked against the type measure/cell_record.py declares,
giving a typed `SavedCell`.

A field that does not fit is dropped (it then reads as missing) and a cell whose identity (cell, model, mode) does not
fit is skipped whole; each gives one warning naming where it was and the field. Nothing here raises on odd data:
wrong types, NaN or infinite figures, integers too large for a float, lone surrogates and over-long text all end as
a warning. Pure: no files, no printing.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from pytest_vllmbench.common.cut import one_line
from pytest_vllmbench.measure.cell_record import HIGHER_IS_BETTER, LOWER_IS_BETTER, SCHEMA, CellRecord
from pytest_vllmbench.measure.metrics import CDF_POINTS
from pytest_vllmbench.results.bottleneck import derived_preemptions

IDENTITY = ("cell", "model", "mode")
MAX_TEXT = 4096  # characters; longer text in a saved run is not ours
_LARGEST = 2**63  # in size, of any number in a saved run: a 64-bit integer's range
_NO_VALUE = object()
# every gateable figure but the score, which a project's scoring hook may make negative: rates, times, counts, costs
_NEVER_NEGATIVE = (HIGHER_IS_BETTER | LOWER_IS_BETTER) - {"score"}
_DECLARED: dict[str, str] = {item.name: str(item.type) for item in fields(CellRecord)}
_EXTRA: dict[str, str] = {"benchmark_mean_s": "float | None"}  # pytest-benchmark's mean time, beside the record
# the keys of a cell's free-form objects that the report reads as numbers or text, with their types
_NESTED: dict[str, dict[str, str]] = {
    "engine_args": {
        "tensor_parallel_size": "int",
        "pipeline_parallel_size": "int",
        "ray_replicas": "int",
        "gpu_memory_utilization": "float",
    },
    "dataset": {"path": "str | None", "sha256": "str | None", "transform": "str | None"},
    "load": {"concurrency": "int | None", "request_rate": "float | None", "point": "str | None"},
}
_CDFS = ("ttft_ms_cdf", "e2el_ms_cdf")
# which copy of its cell in one run a cell is (two tests of one cell): set by the report's reading (results/latest.py),
# never taken from a file
COPY_KEY = "copy_in_run"


def is_ok(cell: Mapping[str, Any]) -> bool:
    """The one status rule: a cell without a status ran; any status (does not fit, skipped, failed) did not."""
    return bool(cell.get("status", "ok") == "ok")


@dataclass(frozen=True, eq=False)
class SavedCell(CellRecord, Mapping[str, Any]):
    """A saved cell: its figures typed as CellRecord declares them (missing ones at their defaults), plus
    pytest-benchmark's mean time. It also reads as the mapping it was saved as (`saved`), because a figure that
    was absent differs from one saved as null and code that picks figures by name (gates, plots, rounds) does so."""

    benchmark_mean_s: float | None = None
    saved: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_saved(cls, raw: Any, where: str) -> tuple[SavedCell | None, tuple[str, ...]]:
        """From one cell of pytest-benchmark's saved JSON (`extra_info` with `benchmark_mean_s`, or an unrun
        entry): tolerant of absent figures, strict on types (see clean_cell); None when the cell is skipped."""
        cleaned = clean_cell(raw, where)
        return (None if cleaned.figures is None else cls.of(cleaned.figures)), cleaned.warnings

    @classmethod
    def of(cls, figures: Mapping[str, Any]) -> SavedCell:
        """A cell whose figures are already checked (cleaned on reading, or the session's own records)."""
        if isinstance(figures, SavedCell):
            return figures
        typed = {name: figures[name] for name in _FIELDS if name in figures}
        return cls(**typed, saved=dict(figures))

    def with_figures(self, changes: Mapping[str, Any]) -> SavedCell:
        return SavedCell.of({**self.saved, **changes})

    @property
    def ok(self) -> bool:
        return is_ok(self)

    @property
    def copy(self) -> int:
        """1, or which later copy of its cell in its run this is (results/latest.py numbers them)."""
        number = self.saved.get(COPY_KEY)
        return number if isinstance(number, int) and not isinstance(number, bool) and number > 1 else 1

    @property
    def outputs_cut_at(self) -> int | None:
        """The token cap every output stopped at (`--ignore-eos`, or each request reached `max_tokens`): such
        outputs are cut short, so their quality says nothing about the model. None when outputs ended freely."""
        sampling = self.sampling or {}
        cap = sampling.get("max_tokens")
        if not isinstance(cap, int) or isinstance(cap, bool) or cap <= 0:
            return None
        if sampling.get("ignore_eos") is True:
            return cap
        return cap if self.n_requests > 0 and self.output_tokens >= self.n_requests * cap else None

    def __getitem__(self, key: str) -> Any:
        return self.saved[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.saved)

    def __len__(self) -> int:
        return len(self.saved)


@dataclass(frozen=True)
class CleanCell:
    figures: dict[str, Any] | None  # None: the cell is skipped (its identity does not fit)
    warnings: tuple[str, ...]


def _text(value: Any) -> Any:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        return _NO_VALUE
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: cannot be printed or written
        return _NO_VALUE
    return one_line(value)


def _number(value: Any, *, integer: bool = False) -> Any:
    """A finite number as saved; NaN and infinities read as None (missing); anything else does not fit."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _NO_VALUE
    if isinstance(value, int):
        return value if abs(value) < _LARGEST else _NO_VALUE
    if integer:
        return _NO_VALUE
    if not math.isfinite(value):
        return None
    return value if abs(value) < _LARGEST else _NO_VALUE  # no figure is that large; twice it is infinite in a plot


def _plain(value: Any, depth: int = 0) -> Any:
    """Any JSON value made safe to show: bad text and huge integers dropped, non-finite floats None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        found = _number(value)
        return None if found is _NO_VALUE else found
    if isinstance(value, str):
        found = _text(value)
        return None if found is _NO_VALUE else found
    if depth > 8:
        return None
    if isinstance(value, list):
        return [_plain(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {_text(key): _plain(item, depth + 1) for key, item in value.items() if _text(key) is not _NO_VALUE}
    return None


def _typed(value: Any, declared: str) -> Any:
    """The value when it fits the declared type, else _NO_VALUE."""
    if value is None:
        return None if declared.endswith("| None") else _NO_VALUE
    base = declared.removesuffix(" | None")
    if base == "str":
        return _text(value)
    if base in ("float", "int"):
        return _number(value, integer=base == "int")
    if base.startswith("list["):
        return _typed_list(value, base)
    if base.startswith("dict["):
        return _typed_dict(value, base)
    return _plain(value)


def _item(value: Any, declared: str) -> Any:
    """An item of a list or an object: a NaN (None) where a number must be does not fit, as a missing figure can
    at the top level but not inside a series or a table of thresholds."""
    found = _typed(value, declared)
    return _NO_VALUE if found is None and not declared.endswith("| None") else found


def _typed_list(value: Any, base: str) -> Any:
    if not isinstance(value, list):
        return _NO_VALUE
    inner = base.removeprefix("list[").removesuffix("]")
    items = [_item(item, inner) for item in value]
    return _NO_VALUE if any(item is _NO_VALUE for item in items) else items


def _typed_dict(value: Any, base: str) -> Any:
    if not isinstance(value, dict):
        return _NO_VALUE
    inner = base.removeprefix("dict[str, ").removesuffix("]")
    if inner == "Any":
        return _plain(value)
    cleaned = {}
    for key, item in value.items():
        found = _item(item, inner)
        if _text(key) is _NO_VALUE or found is _NO_VALUE:
            return _NO_VALUE
        cleaned[_text(key)] = found  # a key is shown as text is: on one line
    return cleaned


def _short(value: Any) -> str:
    try:
        shown = repr(value)
    except (ValueError, RecursionError):  # repr of a huge int is refused (sys.int_info)
        shown = f"<{type(value).__name__}>"
    shown = shown.encode("utf-8", "backslashreplace").decode("utf-8")
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _kind(declared: str) -> str:
    base = declared.removesuffix(" | None")
    if base == "float":
        return "a number (below 2**63 in size)"
    if base == "int":
        return "a whole number (below 2**63 in size)"
    if base == "str":
        return f"text (at most {MAX_TEXT} characters)"
    return "a list of the declared items" if base.startswith("list[") else "an object of the declared shape"


def clean_cell(raw: Any, where: str) -> CleanCell:
    """The cell's fields that fit their declared types; `where` names the file and the entry in the warnings."""
    if not isinstance(raw, Mapping):
        return CleanCell(None, (f"{where}: skipped: not an object",))
    schema = raw.get("vllmbench_schema")
    if isinstance(schema, bool) or not isinstance(schema, int) or not 1 <= schema <= SCHEMA:
        why = f"field 'vllmbench_schema' is {_short(schema)}; this pytest-vllmbench reads layouts 1 to {SCHEMA}"
        return CleanCell(None, (f"{where}: skipped: {why}",))
    for key in IDENTITY:
        value = raw.get(key)
        if _text(value) is _NO_VALUE or not value:
            return CleanCell(None, (f"{where}: skipped: field {key!r} is not a cell's {key} ({_short(value)})",))
    figures: dict[str, Any] = {}
    warnings = []
    for key, value in raw.items():
        if _text(key) is _NO_VALUE:
            warnings.append(f"{where}: field {_short(key)} dropped: not a field name")
            continue
        if key == COPY_KEY:
            warnings.append(f"{where}: field {key!r} dropped: the report numbers a run's copies of a cell itself")
            continue
        declared = _DECLARED.get(key) or _EXTRA.get(key)
        found = _plain(value) if declared is None else _typed(value, declared)
        if found is _NO_VALUE:
            warnings.append(f"{where}: field {key!r} dropped: it is not {_kind(declared or '')} ({_short(value)})")
            continue
        if key in _NEVER_NEGATIVE and isinstance(found, int | float) and found < 0:
            warnings.append(f"{where}: field {key!r} dropped: a rate, time or count is never negative ({found})")
            continue
        if key in _CDFS and found is not None and len(found) != CDF_POINTS:
            warnings.append(f"{where}: field {key!r} dropped: a CDF is {CDF_POINTS} percentiles, not {len(found)}")
            continue
        if key in _NESTED and isinstance(found, dict):
            found = _nested_fields(value, found, _NESTED[key], f"{where}: field {key!r}", warnings)
        figures[key] = found
    if isinstance(figures.get("round_stats"), dict):
        kept = {}
        for name, stats in figures["round_stats"].items():
            mean = stats.get("mean") if isinstance(stats, dict) else None
            if name in _NEVER_NEGATIVE and isinstance(mean, int | float) and mean < 0:  # an interval's low end may be
                warnings.append(f"{where}: round_stats of {name!r} dropped: a negative mean ({mean})")
                continue
            kept[name] = _coherent(stats)
        figures["round_stats"] = kept
    if "preempted_pct" not in figures and (share := derived_preemptions(figures)) is not None:
        figures["preempted_pct"] = share  # a run saved before the figure: read again from vLLM's own count
    return CleanCell(figures, tuple(warnings))


def _nested_fields(
    raw: Mapping[str, Any], found: dict[str, Any], declared: Mapping[str, str], where: str, warnings: list[str]
) -> dict[str, Any]:
    """The object (`found`, cleaned from `raw`) less the keys of `declared` whose raw values do not fit their types."""
    kept = {}
    for key, value in found.items():
        if key in declared and _typed(raw.get(key), declared[key]) is _NO_VALUE:
            why = f"it is not {_kind(declared[key])} ({_short(raw.get(key))})"
            warnings.append(f"{where}: key {key!r} dropped: {why}")
            continue
        kept[key] = value
    return kept


def _coherent(stats: dict[str, Any]) -> dict[str, Any]:
    """An interval whose mean or bounds were NaN (now None) is no interval: its half-width goes too."""
    if any(stats.get(key) is None for key in ("mean", "ci95_low", "ci95_high")):
        return {**stats, "ci95_half": None}
    return stats


_FIELDS = frozenset(_DECLARED) | frozenset(_EXTRA)
