"""A validated batch file that is read again, line by line, each time it is needed: the workload of a cell never
sits in memory whole, however many requests the file holds."""

from __future__ import annotations

import hashlib
import json
from array import array
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import BinaryIO, overload

from pytest_vllmbench.workload.batch import BOM, BatchFileError, BatchRequest, file_lines, iter_batch, read_batch


class BatchFile(Sequence[BatchRequest]):
    """The `first` requests of a file `open_batch` validated, or those of them `picked` (ordinals, sorted).
    A valid file has a request on every line before its last request, so line numbers are ordinals + 1."""

    def __init__(self, path: Path, first: int, picked: Sequence[int] | None = None) -> None:
        self.path = path
        self.first = first
        self.picked = None if picked is None else array("q", picked)
        self._stamp = _stamp(path)

    def __len__(self) -> int:
        return self.first if self.picked is None else len(self.picked)

    def __iter__(self) -> Iterator[BatchRequest]:
        if _stamp(self.path) != self._stamp:
            raise BatchFileError(self.path, [f"{self.path}: changed since it was validated; run again"], 0)
        wanted = iter(self.picked) if self.picked is not None else None
        next_wanted = next(wanted, None) if wanted is not None else 0
        with self.path.open("rb") as handle:
            for ordinal, raw in enumerate(_requestfile_lines(handle)):
                if ordinal >= self.first or next_wanted is None:
                    return
                if wanted is not None:
                    if ordinal != next_wanted:
                        continue
                    next_wanted = next(wanted, None)
                line = json.loads(raw)
                yield BatchRequest(line["custom_id"], line["url"], line["body"], ordinal + 1)

    @overload
    def __getitem__(self, index: int) -> BatchRequest: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[BatchRequest]: ...

    def __getitem__(self, index: int | slice) -> BatchRequest | Sequence[BatchRequest]:
        """A leading slice (`[:n]`, the warm-up's) is another view; anything else reads the file up to it."""
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if start == 0 and step == 1:
                if self.picked is None:
                    return BatchFile(self.path, stop)
                return self.pick(range(stop))
            return list(islice(self, start, stop, step))
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        return next(islice(self, index % len(self), None))

    def pick(self, positions: Sequence[int]) -> BatchFile:
        """The requests at these positions of this view (sorted), in file order."""
        ordinals = positions if self.picked is None else [self.picked[p] for p in positions]
        return BatchFile(self.path, self.first, ordinals)


def _requestfile_lines(handle: BinaryIO) -> Iterator[bytes]:
    for number, raw in enumerate(file_lines(handle), start=1):
        assert raw is not None  # a validated file has no over-long line
        if number == 1 and raw.startswith(BOM):
            raw = raw[len(BOM) :]
        if raw.strip():
            yield raw


def _stamp(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_size, status.st_mtime_ns


def open_batch(path: Path | str, limit: int | None = None) -> BatchFile:
    """Validate `path` in one pass holding 8 bytes a request (a hash of its custom_id, for duplicates); a file
    with any bad line goes through `read_batch`, which raises BatchFileError naming each one as before."""
    path = Path(path)
    hashes = array("Q")
    clean = path.exists()
    if clean:
        for item in iter_batch(path, check_duplicates=False):
            if isinstance(item, str):
                clean = False
                break
            hashes.append(int.from_bytes(hashlib.blake2b(item.custom_id.encode(), digest_size=8).digest(), "little"))
    if not clean or not hashes or _repeats(hashes):
        read_batch(path, limit)  # raises, listing the bad lines (a hash collision alone passes it)
    count = len(hashes) if limit is None else min(len(hashes), limit)
    return BatchFile(path, count)


def _repeats(hashes: array[int]) -> bool:
    import numpy as np  # here: every pytest session imports this module, only a run with a batch file needs numpy

    ordered = np.sort(np.frombuffer(hashes, dtype=np.uint64))
    return bool((ordered[1:] == ordered[:-1]).any())
