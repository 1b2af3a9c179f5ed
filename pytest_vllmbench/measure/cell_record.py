"""The cell record: every figure a cell saves in pytest-benchmark's `extra_info`, with its unit and which way is better.

The runner builds a cell's result as a `CellResult` (a CellRecord with the figures it saves; an undeclared figure is
an error, so nothing is saved that is not named here), the gates take their metric directions from it and
docs/figures.md's list is checked against it. Saved runs are read back as results/saved_run.py's SavedCell, a CellRecord built from the saved JSON
(older runs may lack newer figures).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

SCHEMA = 1
Better = Literal["higher", "lower"]


@dataclass(frozen=True)
class Figure:
    name: str
    unit: str  # "" for labels, counts of things and structures
    better: Better | None  # None: describes the cell, never gated
    doc: str
    sometimes: bool  # saved only where it applies (absent otherwise), e.g. goodput only with --slo


def _figure(unit: str, better: Better | None, doc: str, *, sometimes: bool = False, default: Any = None) -> Any:
    return field(default=default, metadata={"figure": (unit, better, doc, sometimes)})


def _latency(name: str, stat: str) -> Any:
    return _figure("ms", "lower", f"{name.upper()} {stat} over the cell's requests")


class UndeclaredFigure(ValueError):
    """A figure CellRecord does not declare: nothing undeclared is saved."""


def undeclared(names: Iterable[str]) -> list[str]:
    return sorted(set(names) - set(FIGURES))


@dataclass(frozen=True)
class CellRecord:
    # what ran
    vllmbench_schema: int = _figure("", None, "version of this record's layout", default=SCHEMA)
    cell: str = _figure("", None, "cell id: model alias and mode", default="")
    model: str = _figure("", None, "model alias", default="")
    model_source: str | None = _figure("", None, "what vLLM loaded: HF id, or a local folder's name")
    params_b: float | None = _figure("B params", None, "parameter count from the registry")
    dtype: str | None = _figure("", None, "weight dtype from the registry")
    mode: str = _figure("", None, "offline, server, endpoint, run-batch or ray", default="")
    status: str | None = _figure(
        "", None, "why an unrun cell did not run (does not fit, skipped, failed)", sometimes=True
    )
    engine: dict[str, Any] | None = _figure("", None, "engine name, version, platform (and URL for endpoints)")
    engine_args: dict[str, Any] | None = _figure("", None, "engine args the cell ran with, secrets redacted")
    engine_args_set: dict[str, Any] | None = _figure(
        "",
        None,
        "the engine args of engine_args that --engine-arg set: the report keeps such a cell apart",
        sometimes=True,
    )
    sampling: dict[str, Any] | None = _figure("", None, "sampling overrides of the session")
    dataset: dict[str, Any] | None = _figure("", None, "workload path (relative), sha256 and transform")
    weights: str | None = _figure("", None, "stand-in weights: dummy, or 4-bit in flight from random", sometimes=True)
    dummy_source: str | None = _figure(
        "", None, "where a dummy-weight model's config and tokenizer came from", sometimes=True
    )
    gpu_memory_budget_gib: float | None = _figure("GiB", None, "--gpu-memory budget per GPU", sometimes=True)
    client_processes: int | None = _figure(
        "", None, "processes that sent the requests (--client-processes), where more than one", sometimes=True
    )
    xdist_worker: str | None = _figure("", None, "the pytest-xdist worker that ran the cell", sometimes=True)
    # volume
    n_requests: int = _figure("", None, "requests sent", default=0)
    n_failed: int = _figure("", "lower", "requests that failed", default=0)
    errors: dict[str, int] | None = _figure("", None, "failed requests per error kind")
    input_tokens: int = _figure("tokens", None, "prompt tokens over the cell", default=0)
    output_tokens: int = _figure("tokens", None, "generated tokens over the cell", default=0)
    project_to: int | None = _figure("requests", None, "the job size projected_hours is for")
    # time and throughput
    load_s: float | None = _figure("s", "lower", "engine start (load) time")
    load_overlapped: bool | None = _figure(
        "", None, "--start-ahead: the engine loaded beside another one, so load_s is longer than alone", sometimes=True
    )
    wall_s: float | None = _figure("s", "lower", "timed part: first request sent to last response")
    requests_per_s: float | None = _figure("req/s", "higher", "completed requests per second")
    output_tokens_per_s: float | None = _figure("tok/s", "higher", "generated tokens per second")
    total_tokens_per_s: float | None = _figure("tok/s", "higher", "prompt + generated tokens per second")
    goodput_requests_per_s: float | None = _figure(
        "req/s", "higher", "requests per second that met every --slo", sometimes=True
    )
    steady_requests_per_s: float | None = _figure(
        "req/s", "higher", "completions per second between 10 % and 90 % of a round's completions (no ramp, no tail)"
    )
    projected_hours: float | None = _figure(
        "h", "lower", "(load_s + ramp and tail once + project_to / steady_requests_per_s) / 3600, or at requests_per_s"
    )
    # latency (vLLM's definitions)
    ttft_ms_mean: float | None = _latency("ttft", "mean")
    ttft_ms_p50: float | None = _latency("ttft", "p50")
    ttft_ms_p90: float | None = _latency("ttft", "p90")
    ttft_ms_p99: float | None = _latency("ttft", "p99")
    tpot_ms_mean: float | None = _latency("tpot", "mean")
    tpot_ms_p50: float | None = _latency("tpot", "p50")
    tpot_ms_p90: float | None = _latency("tpot", "p90")
    tpot_ms_p99: float | None = _latency("tpot", "p99")
    itl_ms_mean: float | None = _latency("itl", "mean")
    itl_ms_p50: float | None = _latency("itl", "p50")
    itl_ms_p90: float | None = _latency("itl", "p90")
    itl_ms_p99: float | None = _latency("itl", "p99")
    tokens_per_chunk: float | None = _figure(
        "tokens",
        None,
        "output tokens per streamed chunk: above 1 the server sent several at a time (vLLM's --stream-interval) "
        "and ITL is per chunk, not per token (TTFT and TPOT are not affected)",
        sometimes=True,
    )
    e2el_ms_mean: float | None = _latency("e2el", "mean")
    e2el_ms_p50: float | None = _latency("e2el", "p50")
    e2el_ms_p90: float | None = _latency("e2el", "p90")
    e2el_ms_p99: float | None = _latency("e2el", "p99")
    ttft_ms_cdf: list[float] | None = _figure("ms", None, "TTFT percentiles 0..100 (101 numbers), for the CDF plot")
    e2el_ms_cdf: list[float] | None = _figure("ms", None, "E2EL percentiles 0..100 (101 numbers), for the CDF plot")
    # GPUs
    gpus: list[str] | None = _figure("", None, "the cell's GPUs by name (empty without a GPU)")
    peak_vram_mib: int | None = _figure("MiB", "lower", "peak GPU memory in use over the cell's GPUs")
    gpu_util_mean_pct: float | None = _figure(
        "%",
        None,
        "mean GPU utilisation (ray: over each round's batch, first request in an engine -> last done; the "
        "replicas' start left out)",
    )
    gpu_util_max_pct: float | None = _figure("%", None, "highest GPU utilisation")
    cpu_client_pct: float | None = _figure(
        "% of a core", None, "CPU time of the client (the pytest process; offline: also vLLM's front end)"
    )
    cpu_api_server_pct: float | None = _figure(
        "% of a core", None, "CPU time of the owned server's busiest API server process (server mode)"
    )
    cpu_engine_core_pct: float | None = _figure(
        "% of a core", None, "CPU time of the busiest engine-core or worker process (not for endpoints, run-batch, ray)"
    )
    preempted_pct: float | None = _figure(
        "per 100 requests",
        "lower",
        "vLLM's preemptions per 100 requests of the timed rounds: a full KV cache evicted running requests to recompute",
    )
    bound_by: str | None = _figure(
        "",
        None,
        "what limits the cell: kv-cache (preempted_pct >= 1), else gpu (busy >= 90 %), else client, api-server or"
        " engine-core (>= 80 % of a core), else unclear",
    )
    engine_settings: dict[str, Any] | None = _figure(
        "",
        None,
        "the scheduler settings vLLM ran with (max_num_seqs, batched tokens, prefix caching ...), read from the engine",
        sometimes=True,
    )
    warmup_rounds: int | None = _figure("", None, "untimed rounds the engine ran before its first timed round")
    prefix_cache: str | None = _figure("", None, "whether vLLM's prefix cache was emptied before each timed round")
    gpu_power_mean_w: float | None = _figure(
        "W", None, "mean GPU power draw (ray: over each round's batch, as `gpu_util_mean_pct`)"
    )
    gpu_power_max_w: float | None = _figure("W", None, "highest GPU power draw")
    decode_bound_tokens_per_s: float | None = _figure(
        "tok/s", None, "decode roofline: bandwidth / weight bytes x batch"
    )
    roofline_pct: float | None = _figure("%", "higher", "output tok/s as a share of the decode roofline")
    roofline_batch: int | None = _figure("sequences", None, "the batch the roofline assumes")
    # energy and money
    energy_wh: float | None = _figure("Wh", "lower", "GPU energy over the timed part (NVML counter)")
    joules_per_request: float | None = _figure("J", "lower", "GPU energy per completed request")
    joules_per_1k_output_tokens: float | None = _figure("J", "lower", "GPU energy per 1,000 generated tokens")
    projected_kwh: float | None = _figure("kWh", "lower", "GPU energy projected to project_to requests")
    gpu_hourly_cost: float | None = _figure("money/GPU-h", None, "the price of one GPU hour the cell was costed at")
    cost_currency: str | None = _figure("", None, "the currency label of gpu_hourly_cost")
    cost_per_1m_output_tokens: float | None = _figure("money", "lower", "GPU cost per 1M generated tokens")
    projected_cost: float | None = _figure("money", "lower", "GPU cost projected to project_to requests")
    # quality and score
    quality_valid_rate: float | None = _figure("fraction", "higher", "outputs that satisfy their response_format")
    quality_accuracy: float | None = _figure("fraction", "higher", "outputs that match the gold labels")
    quality_checked: int | None = _figure("", None, "outputs checked for validity")
    quality_graded: int | None = _figure("", None, "outputs graded against gold labels")
    score: float | None = _figure("0..1", "higher", "the weighted score among the session's cells", sometimes=True)
    outputs_error: str | None = _figure(
        "", None, "why a file the cell writes (--write-outputs, --trace-dir) could not be written", sometimes=True
    )
    # load points, rounds, traces, server metrics
    load: dict[str, Any] | None = _figure(
        "", None, "the load point: concurrency, request_rate, point label", sometimes=True
    )
    sweep: str | None = _figure("", None, "the sweep (model-mode) a load point belongs to", sometimes=True)
    slo_ms: dict[str, float] | None = _figure(
        "ms", None, "the --slo targets the cell was judged against", sometimes=True
    )
    rounds: list[dict[str, float | None]] | None = _figure(
        "", None, "each timed round's key figures (--rounds >= 2)", sometimes=True
    )
    round_stats: dict[str, dict[str, float | None]] | None = _figure(
        "", None, "per key figure over the rounds: n, mean, stddev, Student-t 95 % CI", sometimes=True
    )
    interleaved: list[str] | None = _figure(
        "",
        None,
        "--interleave: the cells whose rounds alternated with this one's (A B, B A, ...), in their first round's order",
        sometimes=True,
    )
    server_metrics: dict[str, Any] | None = _figure(
        "",
        None,
        "vLLM's metrics while the cell ran (a server's /metrics; offline, its in-process registry): KV cache,"
        " running/waiting, preemptions, prefix hits",
        sometimes=True,
    )
    trace_file: str | None = _figure("", None, "the --trace-dir file of the cell's per-request timings", sometimes=True)
    # what a mode cannot see, and its own timings (run-batch, ray)
    not_measured: list[str] | None = _figure(
        "", None, "figures the mode cannot measure (e.g. TTFT for run-batch)", sometimes=True
    )
    timing: str | None = _figure("", None, "how the mode's wall_s and load_s were taken", sometimes=True)
    run_batch_end_to_end_s: float | None = _figure(
        "s", "lower", "vLLM's batch runner from spawn to exit", sometimes=True
    )
    run_batch_exit_s: float | None = _figure(
        "s", None, "the runner's shutdown after its output was written", sometimes=True
    )
    ray_init_s: float | None = _figure("s", None, "ray.init: joining or starting the Ray instance", sometimes=True)
    ray_end_to_end_s: float | None = _figure("s", "lower", "the Ray Data job from submit to last row", sometimes=True)
    ray_cluster: dict[str, Any] | None = _figure(
        "",
        None,
        "Ray cluster: its address, nodes, CPUs, GPUs, replicas, batch, the replicas' thread settings",
        sometimes=True,
    )
    ray_rows_per_node: dict[str, int] | None = _figure(
        "", None, "rows the vLLM engine stage finished on each Ray node (node id -> rows)", sometimes=True
    )
    # the parity run (--vllm-bench-parity)
    vllm_bench_requests_per_s: float | None = _figure(
        "req/s", None, "vllm bench throughput on the same workload", sometimes=True
    )
    vllm_bench_ratio: float | None = _figure("", None, "requests_per_s / vllm_bench_requests_per_s", sometimes=True)
    vllm_bench_error: str | None = _figure("", None, "why the parity run failed", sometimes=True)

    @classmethod
    def from_figures(cls, figures: Mapping[str, Any]) -> CellRecord:
        if unknown := undeclared(figures):
            raise UndeclaredFigure(f"figure(s) {unknown} are not declared in CellRecord (measure/cell_record.py)")
        return cls(**figures)


@dataclass(frozen=True)
class CellResult(CellRecord):
    """A cell's result as the runner hands it on: its typed record and which figures it saves. `extra_info()` is
    the one place a cell becomes the JSON mapping pytest-benchmark saves (results/saved_run.py reads it back)."""

    saved_names: frozenset[str] = frozenset()  # the figures saved: a figure that sometimes applies only where given

    @classmethod
    def measured(cls, figures: Mapping[str, Any]) -> CellResult:
        """A measured cell: every figure, null where unknown, plus the figures that only sometimes apply where they
        were given (a given null stays: e.g. server_metrics null says the server had no /metrics)."""
        always = (name for name, figure in FIGURES.items() if not figure.sometimes)
        return cls._of(figures, frozenset(always) | frozenset(figures))

    @classmethod
    def given(cls, figures: Mapping[str, Any]) -> CellResult:
        """Saved as given, each name declared: what is known of a cell before it runs, a cell that did not run, or
        one handed over as JSON (an xdist worker's)."""
        return cls._of(figures, frozenset(figures))

    @classmethod
    def _of(cls, figures: Mapping[str, Any], saved: frozenset[str]) -> CellResult:
        CellRecord.from_figures(figures)  # every name declared
        return cls(**figures, saved_names=saved)

    def with_figures(self, figures: Mapping[str, Any]) -> CellResult:
        """The result with `figures` set (and saved), each name declared."""
        CellRecord.from_figures(figures)
        return replace(self, **figures, saved_names=self.saved_names | frozenset(figures))

    def extra_info(self) -> dict[str, Any]:
        """The saved figures in the record's order, as pytest-benchmark's `extra_info` (and the run's unrun list)
        hold them."""
        return {name: getattr(self, name) for name in FIGURES if name in self.saved_names}


def _declared() -> dict[str, Figure]:
    declared = {}
    for item in fields(CellRecord):
        unit, better, doc, sometimes = item.metadata["figure"]
        declared[item.name] = Figure(item.name, unit, better, doc, sometimes)
    return declared


FIGURES: dict[str, Figure] = _declared()
HIGHER_IS_BETTER = frozenset(name for name, figure in FIGURES.items() if figure.better == "higher")
LOWER_IS_BETTER = frozenset(name for name, figure in FIGURES.items() if figure.better == "lower")
