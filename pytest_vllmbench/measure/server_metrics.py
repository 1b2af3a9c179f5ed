"""Sampling vLLM's Prometheus metrics while a cell runs (KV cache, queue, preemptions, prefix cache): a server's
/metrics, or the offline engine's own registry in this process."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pytest_vllmbench.common.bounded_http import DeadlineExceeded, ResponseTooLarge, bounded_get

INTERVAL_S = 0.5
SCRAPE_TIMEOUT_S = 5.0  # one whole scrape, however slowly the server sends it
MAX_SCRAPE_BYTES = 16 * 2**20  # after decompression; a larger answer is not a vLLM server's
# gauges: their peak and mean over the cell (current vLLM names first, then older releases')
GAUGES = {
    "kv_cache_usage_pct": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
    "requests_running": ("vllm:num_requests_running",),
    "requests_waiting": ("vllm:num_requests_waiting",),
}
# counters: how much they grew during the cell
COUNTERS = {
    "preemptions": ("vllm:num_preemptions", "vllm:num_preemptions_total"),
    "prefix_cache_hits": ("vllm:prefix_cache_hits", "vllm:gpu_prefix_cache_hits"),
    "prefix_cache_queries": ("vllm:prefix_cache_queries", "vllm:gpu_prefix_cache_queries"),
}
Sample = dict[str, float]


def parse(text: str) -> Sample:
    """One scrape -> {figure: value}, summed over label sets (one per engine); figures absent are left out."""
    from prometheus_client.parser import text_string_to_metric_families  # only a sampled cell needs it

    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + float(sample.value)
    return _figures(totals)


def from_snapshot(metrics: Iterable[Any]) -> Sample:
    """vLLM's in-process snapshot (`LLM.get_metrics()`: objects with `name` and, for counters and gauges, a
    numeric `value`) -> {figure: value}, summed over label sets as `parse` does."""
    totals: dict[str, float] = {}
    for metric in metrics:
        name, value = getattr(metric, "name", None), getattr(metric, "value", None)
        if isinstance(name, str) and isinstance(value, int | float) and not isinstance(value, bool):
            totals[name] = totals.get(name, 0.0) + float(value)
    return _figures(totals)


def _figures(totals: Mapping[str, float]) -> Sample:
    found: Sample = {}
    for figure, names in {**GAUGES, **COUNTERS}.items():
        for name in names:
            for spelled in (name, f"{name}_total"):
                if spelled in totals:
                    found[figure] = totals[spelled]
                    break
            if figure in found:
                break
    if "kv_cache_usage_pct" in found:
        found["kv_cache_usage_pct"] *= 100.0  # vLLM reports a fraction
    # NaN or an infinity (said, or summed past a float's range) measures nothing, and would not be strict JSON saved
    return {figure: value for figure, value in found.items() if math.isfinite(value)}


def summarize(samples: Sequence[Sample]) -> dict[str, Any]:
    """`server_metrics`: peak and mean of each gauge, growth of each counter, prefix-cache hit rate."""
    figures: dict[str, Any] = {"samples": len(samples)}
    for name in GAUGES:
        values = [s[name] for s in samples if name in s]
        figures[f"{name}_peak"] = round(max(values), 3) if values else None
        figures[f"{name}_mean"] = round(sum(values) / len(values), 3) if values else None
    grown = {name: _growth([s[name] for s in samples if name in s]) for name in COUNTERS}
    figures["preemptions"] = grown["preemptions"]
    hits, queries = grown["prefix_cache_hits"], grown["prefix_cache_queries"]
    figures["prefix_cache_hit_rate"] = round(hits / queries, 4) if hits is not None and queries else None
    # finite samples can still sum or subtract past a float's range; a saved run stays strict JSON
    return {key: None if isinstance(v, float) and not math.isfinite(v) else v for key, v in figures.items()}


def _growth(values: Sequence[float]) -> float | None:
    return None if len(values) < 2 else max(values[-1] - values[0], 0.0)


class MetricsReader(Protocol):
    def scrape(self) -> Sample | None:
        """One reading; None when there is nothing to read now."""
        ...


@dataclass(frozen=True)
class MetricsSource:
    """A server's /metrics, read over HTTP."""

    url: str  # http://host:port/metrics
    headers: Mapping[str, str]
    params: tuple[
        tuple[str, str | int | float | bool | None], ...
    ] = ()  # the endpoint URL's query string goes with every request

    def scrape(self) -> Sample | None:
        import httpx  # only a sampled cell needs it

        try:
            response = bounded_get(self.url, self.headers, self.params, SCRAPE_TIMEOUT_S, MAX_SCRAPE_BYTES)
            if response.status_code != 200:
                return None
            return parse(response.text)
        except (httpx.HTTPError, DeadlineExceeded, ResponseTooLarge, ValueError, TypeError):
            return None


@dataclass(frozen=True)
class InProcessMetrics:
    """The offline engine's metrics, read from this process's registry (`LLM.get_metrics`)."""

    read: Callable[[], Iterable[Any]]

    def scrape(self) -> Sample | None:
        try:
            return from_snapshot(self.read())
        except (AssertionError, AttributeError, RuntimeError, TypeError, ValueError):
            return None  # vLLM's reader refused (stats logging off, an older or a stopped engine): nothing to read


class MetricsSampler:
    """Reads `source` every INTERVAL_S on a thread from enter to exit (once at each end too). A source that gives
    none of vLLM's metrics at the start is not sampled: `figures()` is then None."""

    def __init__(self, source: MetricsReader | None, interval_s: float = INTERVAL_S) -> None:
        self._source = source
        self._interval_s = interval_s
        self._samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.available = False

    def _scrape(self) -> Sample | None:
        assert self._source is not None
        return self._source.scrape()

    def __enter__(self) -> MetricsSampler:
        if self._source is None:
            return self
        first = self._scrape()
        if not first:  # no /metrics, or nothing of vLLM's in it
            return self
        self.available = True
        self._samples.append(first)
        self._thread = threading.Thread(target=self._loop, name="vllmbench-metrics", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            if (sample := self._scrape()) is not None:
                self._samples.append(sample)

    def __exit__(self, *exc_info: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            if (sample := self._scrape()) is not None:
                self._samples.append(sample)

    def figures(self) -> dict[str, Any] | None:
        return summarize(self._samples) if self.available else None
