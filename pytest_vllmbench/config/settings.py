"""What one benchmark session runs: the option table's values resolved into Settings."""

from __future__ import annotations

import json
import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pytest_vllmbench.common.cut import one_line
from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.common.redaction import address_without_credentials, redact_url
from pytest_vllmbench.config.gate_rules import Rule
from pytest_vllmbench.config.loads import LoadPoint, load_points, parse_concurrencies, parse_request_rates
from pytest_vllmbench.config.memory_budget import parse_size
from pytest_vllmbench.config.modes import ModeSpec, mode_names, mode_spec, mode_specs
from pytest_vllmbench.config.options import MAX_CLIENT_PROCESSES
from pytest_vllmbench.config.options import OPTIONS as OPTIONS
from pytest_vllmbench.config.options import Option as Option
from pytest_vllmbench.config.schema import check_tool_table
from pytest_vllmbench.config.score_weights import DEFAULT_FLEXIBILITY, check_weights
from pytest_vllmbench.config.toml_lines import where_written
from pytest_vllmbench.workload.random_spec import is_random


@dataclass(frozen=True)
class Settings:
    models: tuple[str, ...]
    modes: tuple[str, ...]
    dataset: Path
    limit: int | None = None
    dataset_transform: str | None = None
    sample: int | None = None
    seed: int = 0
    max_tokens: int | None = None
    ignore_eos: bool = False
    engine_args: dict[str, Any] = field(default_factory=dict)
    load_format: str | None = None
    rounds: int = 1
    interleave: bool = False  # the cells of one model alternate round by round, their engines alive together
    start_ahead: bool = False  # the session's next CPU engine loads beside the one loading now
    warmup: int | None = None  # None: 1 on a GPU, 0 on the CPU
    project_to: int = 170_000
    gpu_memory: int | None = None  # bytes per GPU (--gpu-memory)
    gpu_hourly_cost: float | None = None
    cost_currency: str | None = None
    endpoint: str | None = None
    concurrency: int | None = None
    request_rate: float | None = None
    request_timeout: float = 600.0
    client_processes: int = 1  # processes sending a server or endpoint cell's requests
    api_key_env: str = "OPENAI_API_KEY"
    api_key_over_http: bool = False
    slo_ms: dict[str, float] = field(default_factory=dict)
    server_timeout: float = 600.0
    write_outputs: Path | None = None
    report: Path | None = None
    gate_rules: tuple[Rule, ...] = ()
    baseline: str = "latest"
    weights: dict[str, float] = field(default_factory=dict)
    flexibility: dict[str, float] = field(default_factory=dict)
    gpu_bandwidth_gbps: dict[str, float] = field(default_factory=dict)
    vllm_bench_parity: bool = False
    gpus_per_worker: int = 1
    workers: int = 1  # pytest-xdist workers sharing this machine (set on workers)
    load_points: tuple[LoadPoint, ...] = ()  # a sweep: more than one load point (server/endpoint cells)
    api_server_count: tuple[int, ...] = ()  # --api-server-count: one server cell per value (empty: vLLM's default)
    trace_dir: Path | None = None
    ray_address: str | None = None  # --ray-address; the ray engine falls back to $RAY_ADDRESS, then a local Ray

    @property
    def random_dataset(self) -> str | None:
        text = str(self.dataset)
        return text if is_random(text) else None

    @property
    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) or None


def parse_api_server_counts(text: Any) -> tuple[int, ...]:
    """--api-server-count=N or N,N...: whole numbers >= 1, each once, in the order given."""
    if text in (None, ""):
        return ()
    counts: list[int] = []
    items = [str(item) for item in text] if isinstance(text, list | tuple) else str(text).split(",")
    for item in items:
        try:
            count = int(item.strip())
        except ValueError:
            count = 0
        if count < 1:
            raise UsageError(f"--api-server-count expects whole numbers >= 1 (e.g. 1,4), got {text!r}")
        counts.append(count)
    return tuple(dict.fromkeys(counts))


def parse_engine_arg(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        # the text may hold a secret typed with the wrong separator (hf_token:...): never echo it
        raise UsageError(f"--engine-arg expects KEY=VALUE; got {len(text)} characters without '=' (not shown)")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip().replace("-", "_"), value


def parse_slo(text: str | None) -> dict[str, float]:
    if not text:
        return {}
    slo: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition(":")
        if not sep or name not in ("ttft", "tpot", "e2el"):
            raise UsageError(f"--slo expects ttft:MS,tpot:MS,e2el:MS, got {text!r}")
        if name in slo:
            raise UsageError(f"--slo names {name} twice in {text!r}")
        slo[name] = _positive(f"--slo {name}", value)
    return slo


def _number(what: str, value: Any, kind: Callable[[Any], Any], minimum: float | None = None) -> Any:
    if isinstance(value, bool) or (kind is int and isinstance(value, float) and not value.is_integer()):
        raise UsageError(f"{what} expects a whole number, got {value!r}")
    try:
        number = kind(value)
    except (TypeError, ValueError, OverflowError):
        raise UsageError(f"{what} expects a number, got {value!r}") from None
    if isinstance(number, float) and not math.isfinite(number):
        raise UsageError(f"{what} expects a finite number, got {value!r}")
    if minimum is not None and number < minimum:
        raise UsageError(f"{what} must be >= {minimum}, got {value!r}")
    return number


def _positive(what: str, value: Any) -> float:
    """Rates and timeouts: finite and above zero (0 s or 0 req/s would mean nothing, or forever)."""
    number = float(_number(what, value, float))
    if number <= 0:
        raise UsageError(f"{what} must be a number above 0, got {value!r}")
    return number


def _check_endpoint_url(url: str) -> None:
    import httpx  # here, not at the top: most sessions have no endpoint

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
        httpx.URL(url).host  # noqa: B018 - the client's own parse: a host not valid IDNA (`xn--zz`) raises here
    except (ValueError, httpx.InvalidURL):
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--endpoint expects an http:// or https:// URL with a host, got {redact_url(url)!r}")


def _check_api_key(variable: str) -> None:
    """The key must fit in an HTTP header: a line break (a key read from a file of two lines) would be refused by
    the client, whose message quotes the header and so the key's tail. The key itself is never shown."""
    key = os.environ.get(variable) or ""
    if one_line(key) != key:
        raise UsageError(f"${variable} holds a line break or control character: an API key cannot (it is not shown)")


def _ray_address(value: Any, modes: tuple[str, ...]) -> str | None:
    """--ray-address as given (Ray parses it when the cell joins); only ray cells use it."""
    if value in (None, ""):
        return None
    address = str(value).strip()
    if not address or any(char.isspace() for char in address):
        shown = address_without_credentials(address)
        raise UsageError(f"--ray-address expects HOST:PORT, ray://HOST:PORT, auto or local, got {shown!r}")
    if "ray" not in modes:
        raise UsageError(
            f"--ray-address={address_without_credentials(address)} is only used by ray mode: add --mode=ray "
            "(the modes run are only ever the ones asked for)"
        )
    return address


# Options that shape only some modes' cells: (flag, key, which modes use it, what it shapes)
_MODE_OPTIONS: tuple[tuple[str, str, Callable[[ModeSpec], bool], str], ...] = (
    ("--engine-arg", "engine_arg", lambda spec: spec.owns_engine, "an engine this session starts"),
    ("--load-format", "load_format", lambda spec: spec.owns_engine, "an engine this session starts"),
    ("--concurrency", "concurrency", lambda spec: spec.sweeps, "the load a client sends"),
    ("--request-rate", "request_rate", lambda spec: spec.sweeps, "the load a client sends"),
    ("--api-server-count", "api_server_count", lambda spec: spec.api_servers, "a vLLM server this session starts"),
)


def _refuse_options_no_mode_uses(raw: Mapping[str, Any], modes: tuple[str, ...]) -> None:
    """An option that shapes only cells of modes not asked for would be dropped: refused, as --endpoint is."""
    for flag, key, uses, shaped in _MODE_OPTIONS:
        if raw.get(key) in (None, "", [], ()) or any(uses(mode_spec(mode)) for mode in modes):
            continue
        users = ", ".join(spec.name for spec in mode_specs() if uses(spec))
        alone = " ".join(f"--mode={mode}" for mode in modes)
        raise UsageError(
            f"{flag} (on the command line, or as {key} in [tool.vllmbench] or the ini file) shapes only {shaped} "
            f"({users}); with {alone} alone it would be ignored: drop it or add one of those modes (the modes run "
            "are only ever the ones asked for)"
        )


def _optional(what: str, value: Any, kind: Callable[[Any], Any], minimum: float) -> Any:
    return None if value in (None, "") else _number(what, value, kind, minimum)


def resolve(raw: Mapping[str, Any], rootdir: Path, tables: Mapping[str, Mapping[str, Any]] | None = None) -> Settings:
    """Typed, validated Settings from one value per option key (already merged by precedence).

    `tables` are the sub-tables of [tool.vllmbench]: `weights` and `flexibility` for the score.
    """
    tables = tables or {}
    modes = tuple(dict.fromkeys(raw["mode"]))
    for mode in modes:
        if mode not in mode_names():
            raise UsageError(f"--mode must be one of {', '.join(mode_names())}, got {mode!r}")
    servers_not_ours = [mode for mode in modes if not mode_spec(mode).owns_engine]  # they need its URL
    if servers_not_ours and not raw["endpoint"]:
        raise UsageError(f"--mode={servers_not_ours[0]} needs --endpoint=URL (e.g. http://127.0.0.1:11434/v1)")
    if raw["endpoint"] and not servers_not_ours:
        raise UsageError(
            f"--endpoint={redact_url(str(raw['endpoint']))} is only used by endpoint mode: add "
            "--mode=endpoint (the modes run are only ever the ones asked for)"
        )
    if raw["endpoint"]:
        _check_endpoint_url(str(raw["endpoint"]))
        _check_api_key(str(raw["api_key_env"]))
    ray_address = _ray_address(raw.get("ray_address"), modes)
    if raw["limit"] not in (None, "") and raw["sample"] not in (None, ""):
        raise UsageError("use either --limit or --sample, not both")
    engine_args = dict(parse_engine_arg(item) for item in raw["engine_arg"])
    gpu_memory = None if raw["gpu_memory"] in (None, "") else parse_size(raw["gpu_memory"])
    clash = sorted({"gpu_memory_utilization", "kv_cache_memory_bytes"} & set(engine_args))
    if gpu_memory is not None and clash:
        raise UsageError(f"--gpu-memory sets vLLM's memory itself; drop --engine-arg {clash[0]}=... or --gpu-memory")
    rounds = _number("--rounds", raw["rounds"], int, 1)
    if raw["interleave"] and rounds < 2:
        raise UsageError(
            f"--interleave alternates timed rounds between cells: add --rounds=N with N >= 2 (got {rounds})"
        )
    if raw["interleave"] and raw["vllm_bench_parity"]:
        raise UsageError(
            "--vllm-bench-parity stops every engine to run vLLM's own benchmark, which --interleave keeps alive: "
            "run them in separate sessions"
        )
    if raw["start_ahead"] and raw["interleave"]:
        raise UsageError(
            "--start-ahead starts the next engine beside the live ones, which --interleave keeps alive together with "
            "a share of the memory each: use one of them"
        )
    if raw["start_ahead"] and raw["vllm_bench_parity"]:
        raise UsageError(
            "--vllm-bench-parity stops every engine to run vLLM's own benchmark alone, and its ratio compares it with a "
            "cell that ran beside a --start-ahead engine: run them in separate sessions"
        )
    report = raw["report"]
    points = load_points(parse_concurrencies(raw["concurrency"]), parse_request_rates(raw["request_rate"]))
    _refuse_options_no_mode_uses(raw, modes)  # after the values' own checks: a bad value is named first
    models = tuple(dict.fromkeys(str(name) for name in raw["model"]))
    if any(not name.strip() for name in models):
        raise UsageError("--model expects a model name, got an empty one")
    return Settings(
        models=models,
        modes=modes,
        dataset=Path(raw["dataset"]) if is_random(raw["dataset"]) else _path(raw["dataset"], rootdir),
        limit=_optional("--limit", raw["limit"], int, 1),
        dataset_transform=str(raw["dataset_transform"]) if raw["dataset_transform"] else None,
        sample=_optional("--sample", raw["sample"], int, 1),
        seed=_number("--seed", raw["seed"], int),
        max_tokens=_optional("--max-tokens", raw["max_tokens"], int, 1),
        ignore_eos=bool(raw["ignore_eos"]),
        engine_args=engine_args,
        load_format=raw["load_format"] or None,
        rounds=rounds,
        interleave=bool(raw["interleave"]),
        start_ahead=bool(raw["start_ahead"]),
        warmup=_optional("--warmup", raw["warmup"], int, 0),
        project_to=_number("--project-to", raw["project_to"], int, 1),
        gpu_memory=gpu_memory,
        gpu_hourly_cost=_optional("--gpu-hourly-cost", raw["gpu_hourly_cost"], float, 0),
        cost_currency=str(raw["cost_currency"]) if raw["cost_currency"] not in (None, "") else None,
        endpoint=raw["endpoint"] or None,
        concurrency=points[0].concurrency if len(points) == 1 else None,
        request_rate=points[0].request_rate if len(points) == 1 else None,
        load_points=points if len(points) > 1 else (),
        api_server_count=parse_api_server_counts(raw.get("api_server_count")),
        trace_dir=_path(raw["trace_dir"], rootdir) if raw["trace_dir"] else None,
        ray_address=ray_address,
        request_timeout=_positive("--request-timeout", raw["request_timeout"]),
        client_processes=_client_processes(raw["client_processes"]),
        api_key_env=str(raw["api_key_env"]),
        api_key_over_http=bool(raw["api_key_over_http"]),
        slo_ms=parse_slo(raw["slo"]),
        server_timeout=_positive("--server-timeout", raw["server_timeout"]),
        write_outputs=_path(raw["write_outputs"], rootdir) if raw["write_outputs"] else None,
        report=None if str(report).lower() == "none" else _path(report, rootdir),
        gate_rules=tuple(Rule.parse(text) for text in raw["vllmbench_gate"]),
        baseline=str(raw["vllmbench_baseline"]),
        weights=check_weights(tables.get("weights", {})),
        flexibility={**DEFAULT_FLEXIBILITY, **_flexibility(tables.get("flexibility", {}))},
        vllm_bench_parity=bool(raw["vllm_bench_parity"]),
        gpus_per_worker=_number("--gpus-per-worker", raw["gpus_per_worker"], int, 1),
        gpu_bandwidth_gbps={
            name: _number(f"gpu_bandwidth_gbps.{name}", value, float, 1)
            for name, value in tables.get("gpu_bandwidth_gbps", {}).items()
        },
    )


def _client_processes(value: Any) -> int:
    count: int = _number("--client-processes", value, int, 1)
    if count > MAX_CLIENT_PROCESSES:
        raise UsageError(f"--client-processes is at most {MAX_CLIENT_PROCESSES}, got {count}")
    return count


def _flexibility(table: Mapping[str, Any]) -> dict[str, float]:
    for mode, value in table.items():
        if mode not in mode_names() or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise UsageError(
                f"[tool.vllmbench.flexibility]: {mode} = {value!r}; expected a mode and a number in [0, 1]"
            )
    return {mode: float(value) for mode, value in table.items()}


def _path(value: Any, rootdir: Path) -> Path:
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else rootdir / path


def read_tool_table(pyproject: Path) -> dict[str, Any]:
    """The [tool.vllmbench] table of a pyproject.toml (empty when there is none), keys with underscores."""
    if not pyproject.is_file():
        return {}
    try:
        text = pyproject.read_text(encoding="utf-8")
        tool = tomllib.loads(text).get("tool", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{pyproject}: {exc}") from None
    if not isinstance(tool, dict):
        raise UsageError(
            f"{where_written(pyproject, text, ('tool',))}: [tool] must be a table, got {type(tool).__name__}"
        )
    if "vllmbench" not in tool:
        return {}
    return check_tool_table(tool["vllmbench"], OPTIONS, str(pyproject), text)


def merge_sources(cli: Mapping[str, Any], tool_table: Mapping[str, Any], ini: Mapping[str, Any]) -> dict[str, Any]:
    """Per option: the command line wins, then [tool.vllmbench], then the pytest ini key, then the default."""
    merged = {}
    for option in OPTIONS:
        for source in (cli, tool_table, ini):
            value = source.get(option.key)
            if value not in (None, [], ""):
                merged[option.key] = (
                    list(value)
                    if option.multi and isinstance(value, (list, tuple))
                    else ([value] if option.multi else value)
                )
                break
        else:
            merged[option.key] = option.default
    return merged
