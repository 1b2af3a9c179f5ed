"""The benchmark matrix: one cell per (model, mode), in an order that loads each model once."""

from __future__ import annotations

from dataclasses import dataclass

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.config.loads import LoadPoint
from pytest_vllmbench.config.modes import mode_spec
from pytest_vllmbench.config.registry import ModelSpec, Registry


@dataclass(frozen=True)
class Cell:
    model: ModelSpec
    mode: str
    requested: str  # the name as the user wrote it: what an endpoint serves
    load: LoadPoint | None = None  # one point of a load sweep; its cells share the engine (same engine_key)
    api_servers: int | None = None  # server cells: --api-server-count (None: vLLM's default)

    @property
    def id(self) -> str:
        return f"{self.sweep}-{self.load.label}" if self.load is not None else self.sweep

    @property
    def sweep(self) -> str:
        """model-mode: the cell id without its load point."""
        suffix = f"-api{self.api_servers}" if self.api_servers is not None else ""
        return f"{self.model.alias}-{self.mode}{suffix}"

    @property
    def engine_key(self) -> tuple[str, str]:
        mode = self.mode if self.api_servers is None else f"{self.mode}-api{self.api_servers}"
        return (self.model.source, mode)


def build_matrix(
    models: tuple[str, ...],
    modes: tuple[str, ...],
    registry: Registry,
    loads: tuple[LoadPoint, ...] = (),
    api_server_counts: tuple[int, ...] = (),
) -> list[Cell]:
    """Model-major order, so a model's engines are started and stopped before the next model's; a sweep's
    points follow each other, lightest first, on the same engine. Server cells come once per API server count.

    Cell ids are unique: two names for the same model (an alias and its HF id) make one cell; two different
    models whose ids would collide (org1/llama and org2/llama) are a UsageError, never one run twice."""
    cells = []
    first: dict[str, Cell] = {}
    for name in models:
        for mode in modes:
            spec = mode_spec(mode)
            # a server not ours serves whatever it serves under the name asked for
            model = registry.resolve(name) if spec.owns_engine else registry.resolve_served(name)
            seen = first.setdefault(f"{model.alias}-{mode}", Cell(model, mode, name))
            if seen.requested != name:
                if seen.model.source == model.source:
                    continue
                raise UsageError(
                    f"--model={seen.requested} and --model={name} would both be cell {seen.sweep}; benchmark "
                    "them in separate sessions, or give one a registry alias or a local folder of another name"
                )
            points = loads if spec.sweeps and loads else (None,)
            counts: tuple[int | None, ...] = api_server_counts if spec.api_servers and api_server_counts else (None,)
            cells += [Cell(model, mode, name, point, count) for count in counts for point in points]
    return cells
