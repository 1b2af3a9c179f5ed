"""The option table: each option is a pytest option, its ini key and its [tool.vllmbench] key at once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pytest_vllmbench.config.modes import mode_names

DEFAULT_DATASET = "data/batch_5k.jsonl"
MAX_CLIENT_PROCESSES = 64


@dataclass(frozen=True)
class Option:
    name: str  # CLI flag without dashes; ini key is vllmbench_<name with _>; [tool.vllmbench] key is the same
    help: str
    default: Any = None
    multi: bool = False
    flag: bool = False
    metavar: str | None = None

    @property
    def key(self) -> str:
        return self.name.replace("-", "_")

    @property
    def ini_name(self) -> str:
        return self.key if self.key.startswith("vllmbench_") else f"vllmbench_{self.key}"


OPTIONS = (
    Option(
        "model",
        "model alias, Ollama tag, HF id or local folder (repeatable; default: the models the batch file's lines name)",
        [],
        multi=True,
        metavar="NAME",
    ),
    Option(
        "mode",
        f"{' | '.join(mode_names())} (repeatable; default offline and server)",
        ["offline", "server"],
        multi=True,
        metavar="MODE",
    ),
    Option(
        "dataset",
        f"OpenAI Batch JSONL file (default {DEFAULT_DATASET}), or random:IN:OUT:N for vLLM's random workload",
        DEFAULT_DATASET,
        metavar="PATH",
    ),
    Option(
        "dataset-transform",
        "how a script derived the --dataset file from another (e.g. 'response_format "
        "removed'), recorded beside its name and sha256",
        None,
        metavar="TEXT",
    ),
    Option("limit", "use only the first N requests", None, metavar="N"),
    Option("sample", "use N requests drawn at random (with --seed)", None, metavar="N"),
    Option("seed", "seed for --sample", 0, metavar="S"),
    Option("max-tokens", "override every request's max_tokens", None, metavar="N"),
    Option("ignore-eos", "generate exactly max_tokens tokens per request", False, flag=True),
    Option(
        "engine-arg",
        "KEY=VALUE passed to vLLM (repeatable; VALUE parsed as JSON when it can be)",
        [],
        multi=True,
        metavar="KEY=VALUE",
    ),
    Option("load-format", "vLLM load_format (e.g. dummy for sizing without weights)", None, metavar="FORMAT"),
    Option("rounds", "timed rounds per cell", 1, metavar="N"),
    Option(
        "interleave",
        "alternate the cells of each model round by round (A B, B A, A B, ...), their engines kept alive "
        "together, each with an equal share of the GPU memory unless you set one; needs --rounds=N (N >= 2)",
        False,
        flag=True,
    ),
    Option(
        "start-ahead",
        "start the session's next engine (a CPU server) while the current one loads, handing the current one over "
        "once both serve: a timed cell runs beside an idle engine (on 2 cores the offline cell measured ~7% fewer "
        "req/s so) and each overlapped load_s is longer (marked load_overlapped); not with --interleave, "
        "--vllm-bench-parity or xdist",
        False,
        flag=True,
    ),
    Option(
        "warmup",
        "untimed warm-up rounds (of at most the first 512 requests) per engine before its first timed round (default: 1 on a GPU, where the first "
        "round JIT-compiles kernels; 0 on the CPU)",
        None,
        metavar="N",
    ),
    Option(
        "project-to",
        "size of the full job, for projected_hours, projected_kwh and projected_cost",
        170_000,
        metavar="N",
    ),
    Option(
        "gpu-memory",
        "cap the GPU memory each GPU of a cell may use, e.g. 16GiB, 24GB, 16384MiB (would it fit "
        "on a smaller card?); becomes vLLM's gpu_memory_utilization",
        None,
        metavar="SIZE",
    ),
    Option(
        "gpu-hourly-cost",
        "price of one GPU for one hour (any currency), for cost_per_1m_output_tokens and projected_cost",
        None,
        metavar="PRICE",
    ),
    Option(
        "cost-currency",
        "label of --gpu-hourly-cost's currency, e.g. USD (shown beside every cost)",
        None,
        metavar="LABEL",
    ),
    Option("endpoint", "base URL of a running OpenAI-compatible server (endpoint mode)", None, metavar="URL"),
    Option(
        "concurrency",
        "requests in flight at once in server/endpoint mode (default: all); a list 1,16,64 "
        "sweeps: one cell per value, on one server start",
        None,
        metavar="N[,N...]",
    ),
    Option(
        "api-server-count",
        "API server processes of each owned vLLM server (`vllm serve --api-server-count`; default vLLM's, one); "
        "a list 1,4 runs one server cell per value",
        None,
        metavar="N[,N...]",
    ),
    Option(
        "request-rate",
        "Poisson arrival rate in requests/s (default: all at once); a list 2,8,inf sweeps (inf: no limit)",
        None,
        metavar="R[,R...]",
    ),
    Option(
        "trace-dir",
        "write one JSONL per cell into DIR: each request's custom_id, send time, TTFT, E2EL, token "
        "counts and error kind (never prompt or output text)",
        None,
        metavar="DIR",
    ),
    Option(
        "client-processes",
        f"processes sending a server or endpoint cell's requests (default 1, at most {MAX_CLIENT_PROCESSES}), started "
        "with its engine: for a server that streams faster than one Python process reads",
        1,
        metavar="N",
    ),
    Option("request-timeout", "seconds before one HTTP request counts as failed", 600.0, metavar="S"),
    Option("api-key-env", "environment variable holding the API key (never saved)", "OPENAI_API_KEY", metavar="VAR"),
    Option(
        "api-key-over-http",
        "send the API key to a plain-http endpoint that is not on this machine (withheld otherwise)",
        False,
        flag=True,
    ),
    Option("slo", "goodput SLO, e.g. ttft:500,tpot:50 (milliseconds)", None, metavar="SPEC"),
    Option("server-timeout", "seconds to wait for a started server to become healthy", 600.0, metavar="S"),
    Option(
        "write-outputs",
        "write OpenAI batch output JSONL per cell into DIR (a file there this tool did not write is left alone)",
        None,
        metavar="DIR",
    ),
    Option(
        "vllm-bench-parity",
        "after an offline cell on a random:IN:OUT:N workload, run `vllm bench throughput` "
        "on the same engine args and save the ratio as vllm_bench_ratio",
        False,
        flag=True,
    ),
    Option("gpus-per-worker", "GPUs each pytest-xdist worker gets (CUDA_VISIBLE_DEVICES from its id)", 1, metavar="K"),
    Option("report", "Markdown report regenerated after a saved run ('none' to skip)", "BENCHMARKS.md", metavar="PATH"),
    Option(
        "vllmbench-gate",
        "fail the session if METRIC gets worse by more than CHANGE against the baseline, "
        "e.g. output_tokens_per_s:-5% or ttft_ms_p99:+10% (repeatable)",
        [],
        multi=True,
        metavar="METRIC:CHANGE",
    ),
    Option(
        "vllmbench-baseline",
        "baseline for the gates: 'latest' (newest saved run of this machine) or a saved run's number or name",
        "latest",
        metavar="RUN",
    ),
    Option(
        "ray-address",
        "the Ray cluster ray cells join, e.g. 10.0.0.5:6379 or ray://head:10001 (default $RAY_ADDRESS, else a "
        "local Ray instance started for the cell and stopped after it); nothing of a joined cluster is stopped",
        None,
        metavar="ADDRESS",
    ),
)
