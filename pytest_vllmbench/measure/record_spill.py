"""A round's per-request records kept off the heap: one column file per figure and one JSON line per request for
its text, so a cell's memory does not grow with its number of requests. The figures are computed from the
columns one at a time (`measure/metrics.py`); the texts are read back, in request order, only for the quality
check and the outputs file."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from pytest_vllmbench.measure.request_record import RequestRecord

if TYPE_CHECKING:
    import numpy as np

FLUSH_ROWS = 65_536  # rows buffered per column before they are appended to its file
# column name -> array typecode; NaN stands for "not measured" in the float columns
COLUMNS = {"input": "q", "output": "q", "ok": "b", "e2el": "d", "ttft": "d", "tpot": "d", "done_at": "d"}


class RecordSpill:
    """Append records in request order; read columns or whole records back. `close()` removes the files."""

    def __init__(self, records: Iterable[RequestRecord] = ()) -> None:
        # numpy (it and the sketch) is imported when a cell first spills, not by every pytest session
        from pytest_vllmbench.measure.itl_sketch import ItlSketch

        self._folder = Path(tempfile.mkdtemp(prefix="vllmbench-records-"))
        self._buffers: dict[str, array[Any]] = {name: array(code) for name, code in COLUMNS.items()}
        self._texts = (self._folder / "texts.jsonl").open("w", encoding="utf-8")
        self.count = 0
        self.errors: Counter[str] = Counter()
        self.itl = ItlSketch()
        self.chunks = self.chunked_tokens = 0  # streamed content chunks, and the tokens of those requests
        for record in records:
            self.append(record)

    def append(self, record: RequestRecord) -> None:
        nan = math.nan
        buffers = self._buffers
        buffers["input"].append(record.input_tokens)
        buffers["output"].append(record.output_tokens)
        buffers["ok"].append(record.ok)
        buffers["e2el"].append(nan if record.e2el_s is None else record.e2el_s)
        buffers["ttft"].append(nan if record.ttft_s is None else record.ttft_s)
        tpot = record.tpot_s
        buffers["tpot"].append(nan if tpot is None else tpot)
        buffers["done_at"].append(nan if record.done_at is None else record.done_at)
        if record.error is not None:
            self.errors[record.error] += 1
        elif record.itl_s:
            self.itl.add(record.itl_s)
            self.chunks += len(record.itl_s) + 1
            self.chunked_tokens += record.output_tokens
        self._texts.write(json.dumps([record.custom_id, record.text, record.finish_reason, record.error]) + "\n")
        self.count += 1
        if len(buffers["ok"]) >= FLUSH_ROWS:
            self._flush()

    def _flush(self) -> None:
        for name, buffer in self._buffers.items():
            with (self._folder / f"{name}.bin").open("ab") as handle:
                buffer.tofile(handle)
            del buffer[:]
        self._texts.flush()

    def column(self, name: str) -> np.ndarray:
        """One column for every request, read whole (the only per-request data in memory at a time)."""
        import numpy as np

        self._flush()
        path = self._folder / f"{name}.bin"
        dtype = np.dtype(COLUMNS[name]).newbyteorder("=")
        return np.fromfile(path, dtype=dtype) if path.exists() else np.empty(0, dtype=dtype)

    def records(self) -> Iterator[RequestRecord]:
        """Every record again, in order, with its text and without its ITL gaps (those live in `itl`)."""
        self._flush()
        columns = ("input", "output", "e2el", "ttft", "done_at")
        with (self._folder / "texts.jsonl").open(encoding="utf-8") as texts:
            for rows in self._column_chunks(columns):
                for index in range(len(rows["input"])):
                    custom_id, text, finish_reason, error = json.loads(texts.readline())
                    yield RequestRecord(
                        custom_id=custom_id,
                        input_tokens=int(rows["input"][index]),
                        output_tokens=int(rows["output"][index]),
                        e2el_s=_maybe(rows["e2el"][index]),
                        ttft_s=_maybe(rows["ttft"][index]),
                        error=error,
                        text=text,
                        finish_reason=finish_reason,
                        done_at=_maybe(rows["done_at"][index]),
                    )

    def _column_chunks(self, names: tuple[str, ...]) -> Iterator[dict[str, np.ndarray]]:
        import numpy as np

        handles = {name: (self._folder / f"{name}.bin").open("rb") for name in names}
        try:
            while True:
                rows = {
                    name: np.fromfile(handle, dtype=np.dtype(COLUMNS[name]), count=FLUSH_ROWS)
                    for name, handle in handles.items()
                }
                if not len(rows[names[0]]):
                    return
                yield rows
        finally:
            for handle in handles.values():
                handle.close()

    def close(self) -> None:
        self._texts.close()
        shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> RecordSpill:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _maybe(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


class SpilledRecords(Sequence[RequestRecord]):
    """A round's records as a re-iterable sequence (what the quality hook and the outputs file read)."""

    def __init__(self, spill: RecordSpill) -> None:
        self.spill = spill

    def __len__(self) -> int:
        return self.spill.count

    def __iter__(self) -> Iterator[RequestRecord]:
        return self.spill.records()

    @overload
    def __getitem__(self, index: int) -> RequestRecord: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[RequestRecord]: ...

    def __getitem__(self, index: int | slice) -> RequestRecord | Sequence[RequestRecord]:
        """Reads up to the record: for the odd look-up, not for loops."""
        if isinstance(index, slice):
            return list(self)[index]
        if not -self.spill.count <= index < self.spill.count:
            raise IndexError(index)
        index %= self.spill.count
        for position, record in enumerate(self.spill.records()):
            if position == index:
                return record
        raise IndexError(index)
