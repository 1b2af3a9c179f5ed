"""Inter-token latencies (one value per generated token) in bounded memory: exact up to EXACT_LIMIT gaps, then a
histogram of log-spaced buckets whose percentiles are within RELATIVE_ERROR of the exact ones."""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence

import numpy as np

EXACT_LIMIT = 1 << 20  # gaps kept as they are (8 MiB); a round with more is folded into the histogram
FOLD_EVERY = 1 << 16  # gaps buffered before they are added to the histogram, once it is in use
SMALLEST_S = 1e-6  # gaps below this (and zeros: tokens of one chunk) share the first bucket, shown as 0
LARGEST_S = 1e4
GROWTH = 1.001  # each bucket's upper edge over its lower edge
RELATIVE_ERROR = math.sqrt(GROWTH) - 1  # a bucket's geometric middle is this close to any value in it
BUCKETS = math.ceil(math.log(LARGEST_S / SMALLEST_S) / math.log(GROWTH)) + 2  # +1 zero bucket, +1 overflow


class ItlSketch:
    def __init__(self) -> None:
        self.count = 0
        self.total_s = 0.0
        self._pending = array("d")
        self._histogram: np.ndarray | None = None  # counts per bucket, once EXACT_LIMIT is passed

    def add(self, gaps: Sequence[float]) -> None:
        self._pending.extend(gaps)
        self.count += len(gaps)
        self.total_s += math.fsum(gaps)
        if self._histogram is None and len(self._pending) > EXACT_LIMIT:
            self._histogram = np.zeros(BUCKETS, dtype=np.int64)
        if self._histogram is not None and len(self._pending) >= FOLD_EVERY:
            self._fold()

    @property
    def exact(self) -> bool:
        return self._histogram is None

    def values_s(self) -> np.ndarray:
        """Every gap, while the sketch is still exact."""
        if not self.exact:
            raise ValueError("the gaps were folded into a histogram")
        return np.frombuffer(self._pending, dtype=float) if self._pending else np.empty(0)

    def _fold(self) -> None:
        assert self._histogram is not None
        values = np.frombuffer(self._pending, dtype=float)
        self._histogram += np.bincount(bucket_of(values), minlength=BUCKETS)
        del values
        del self._pending[:]

    def percentiles_s(self, points: Sequence[float]) -> list[float]:
        """Like numpy's default (linear between the two nearest ranks), from the buckets' middles."""
        self._fold()
        assert self._histogram is not None
        cumulative = np.cumsum(self._histogram)
        results = []
        for point in points:
            rank = point / 100.0 * (self.count - 1)
            low, high = math.floor(rank), math.ceil(rank)
            low_value, high_value = (_middle(int(np.searchsorted(cumulative, r, side="right"))) for r in (low, high))
            results.append(low_value + (high_value - low_value) * (rank - low))
        return results


def bucket_of(values_s: np.ndarray) -> np.ndarray:
    buckets = np.zeros(len(values_s), dtype=np.int64)
    positive = values_s >= SMALLEST_S
    scaled = np.log(values_s[positive] / SMALLEST_S) / math.log(GROWTH)
    buckets[positive] = np.minimum(scaled.astype(np.int64) + 1, BUCKETS - 1)
    return buckets


def _middle(bucket: int) -> float:
    if bucket == 0:
        return 0.0
    return float(SMALLEST_S * GROWTH ** (bucket - 1 + 0.5))
