"""Files the package ships (models.toml, gpus.toml, configs/): the installed copy, else the repository's."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]
_INSTALLED = _PACKAGE / "_data"
_IN_REPO = _PACKAGE.parent / "data"


def data_path(name: str) -> Path:
    """`name` inside the wheel's _data/ when installed from one, else inside the repository's data/."""
    installed = _INSTALLED / name
    return installed if installed.exists() else _IN_REPO / name
