"""The benchmark modes, each one `ModeSpec` registered here: what the options, the matrix, the score and the
runner need to know of a mode. Its engine lives in `engines/`, named by `start` ("module:function") and imported
only when a cell of the mode starts, so this table sits below the engines (the layer contract) and costs no import.

Adding a mode = its engine file in `engines/` with a `start(plan) -> Engine` function + one `register(...)` here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModeSpec:
    name: str
    flexibility: float  # its share of the score's flexibility criterion, in [0, 1]: no mode can lack one
    start: str  # "module:function" taking the cell's CellPlan and returning its started Engine
    sweeps: bool = False  # a client sends the requests: one cell per load point, whose load and /metrics are saved
    owns_engine: bool = True  # False: someone else's server (no engine args, weights, memory budget or GPUs of ours)
    api_servers: bool = False  # vLLM's API server processes front it: one cell per --api-server-count
    # its engine's processes start inside each timed round (run-batch, ray): their CPU share is not measured
    engine_in_round: bool = False
    own_args_prefix: str | None = None  # engine args so named shape this mode's cells only (e.g. ray_replicas)
    replicas_arg: str | None = None  # the engine arg counting its engines side by side, each on its own GPUs
    figures: tuple[str, ...] = ()  # what its engine's cell_figures() adds to the cell (declared on CellRecord)
    # "module:function" taking the CellPlan and returning a PendingEngine: its engine loads in processes of its own
    # while the session goes on (--start-ahead); None: it cannot be started ahead
    start_ahead: str | None = None

    def __post_init__(self) -> None:
        if not self.name or not math.isfinite(self.flexibility) or not 0 <= self.flexibility <= 1:
            raise ValueError(f"mode {self.name!r}: flexibility must be a number in [0, 1], got {self.flexibility!r}")
        for name, target in (("start", self.start), ("start_ahead", self.start_ahead)):
            if target is None:
                continue
            module, sep, function = target.partition(":")
            if not (module and sep and function):
                raise ValueError(f"mode {self.name!r}: {name} must read 'module:function', got {target!r}")

    def gpu_count(self, engine_gpus: int, engine_args: Mapping[str, Any]) -> int | None:
        """How many GPUs its cells run on: `engine_gpus` (one engine's) per engine; None: not ours to say."""
        if not self.owns_engine:
            return None
        return engine_gpus * (int(engine_args.get(self.replicas_arg, 1)) if self.replicas_arg else 1)


def engine_gpu_count(engine_args: Mapping[str, Any]) -> int:
    """The GPUs one vLLM engine spans: tensor_parallel_size x pipeline_parallel_size."""
    return int(engine_args.get("tensor_parallel_size", 1)) * int(engine_args.get("pipeline_parallel_size", 1))


_REGISTERED: dict[str, ModeSpec] = {}


def register(spec: ModeSpec) -> ModeSpec:
    """Make `spec` a mode every option, matrix, score and runner knows; a name is registered once."""
    if spec.name in _REGISTERED and _REGISTERED[spec.name] != spec:
        raise ValueError(f"mode {spec.name!r} is registered already")
    _REGISTERED[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """For tests that register a mode of their own."""
    _REGISTERED.pop(name, None)


def mode_names() -> tuple[str, ...]:
    return tuple(_REGISTERED)


def mode_specs() -> tuple[ModeSpec, ...]:
    return tuple(_REGISTERED.values())


def mode_spec(name: str) -> ModeSpec:
    """The registered mode; a KeyError names the known ones (settings.resolve turns an unknown --mode away first)."""
    try:
        return _REGISTERED[name]
    except KeyError:
        raise KeyError(f"unknown mode {name!r}; known: {', '.join(_REGISTERED)}") from None


class _Flexibility(Mapping[str, float]):
    """Every registered mode's flexibility, read when asked (so a mode registered later is scored too)."""

    def __getitem__(self, name: str) -> float:
        return _REGISTERED[name].flexibility

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(_REGISTERED))

    def __len__(self) -> int:
        return len(_REGISTERED)


FLEXIBILITY: Mapping[str, float] = _Flexibility()

# The seed credits server mode with OpenAI compatibility, progress monitoring and cancellation; offline mode has
# none of the three. An endpoint is a server too. run-batch reads and writes the OpenAI Batch format
# (compatibility) but shows no per-request progress and cannot cancel part of a batch: 1/3. Ray Data shows
# progress and can stop a job, but takes rows, not the OpenAI format: 2/3 (its scale-out is measured by
# throughput, not credited here).
register(ModeSpec("offline", flexibility=0.0, start="pytest_vllmbench.engines.offline:start"))
register(
    ModeSpec(
        "server",
        flexibility=1.0,
        start="pytest_vllmbench.engines.server:start",
        sweeps=True,
        api_servers=True,
        start_ahead="pytest_vllmbench.engines.server:start_ahead",
    )
)
register(
    ModeSpec(
        "endpoint", flexibility=1.0, start="pytest_vllmbench.engines.endpoint:start", sweeps=True, owns_engine=False
    )
)
register(
    ModeSpec(
        "run-batch",
        flexibility=0.33,
        start="pytest_vllmbench.engines.run_batch:start",
        engine_in_round=True,
        figures=("run_batch_end_to_end_s", "run_batch_exit_s", "not_measured", "timing"),
    )
)
register(
    ModeSpec(
        "ray",
        flexibility=0.67,
        start="pytest_vllmbench.engines.ray_data:start",
        own_args_prefix="ray_",
        replicas_arg="ray_replicas",
        engine_in_round=True,
        figures=("ray_cluster", "ray_rows_per_node", "ray_init_s", "ray_end_to_end_s", "not_measured", "timing"),
    )
)
