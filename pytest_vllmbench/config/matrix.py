"""The benchmark matrix: one cell per (model, mode), in an order that loads each model once."""

from __future__ import annotations

from dataclasses import dataclass

from pytest_vllmbench.config.registry import ModelSpec, Registry


@dataclass(frozen=True)
class Cell:
    model: ModelSpec
    mode: str
    requested: str  # the name as the user wrote it: what an endpoint serves


    @property
    def id(self) -> str:
        return f"{self.model.alias}-{self.mode}"

    @property
    def engine_key(self) -> tuple[str, str]:
        return (self.model.source, self.mode)


def build_matrix(models: tuple[str, ...], modes: tuple[str, ...], registry: Registry) -> list[Cell]:
    """Model-major order, so a model's engines are started and stopped before the next model's."""
    return [Cell(registry.resolve_served(name) if mode == "endpoint" else registry.resolve(name), mode, name)
            for name in models for mode in modes]
