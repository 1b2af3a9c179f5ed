"""--api-server-count: a server cell's API server processes, parsed, swept (one cell per value) and started
through `vllm serve` (the api_server module runs one process whatever it is told)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.config.matrix import build_matrix
from pytest_vllmbench.config.registry import load_registry
from pytest_vllmbench.config.settings import merge_sources, parse_api_server_counts, resolve
from pytest_vllmbench.engines.server import server_command


def test_counts_parse_in_order_once_each() -> None:
    assert parse_api_server_counts(None) == ()
    assert parse_api_server_counts("4") == (4,)
    assert parse_api_server_counts("1, 4,1") == (1, 4)


@pytest.mark.parametrize("text", ["0", "-2", "two", "1,,4", "1.5"])
def test_bad_counts_are_usage_errors_naming_the_option(text: str) -> None:
    with pytest.raises(UsageError, match="--api-server-count expects whole numbers >= 1"):
        parse_api_server_counts(text)


def test_the_option_reaches_the_settings() -> None:
    settings = resolve(merge_sources({"api_server_count": "1,4"}, {}, {}), Path("/project"))
    assert settings.api_server_count == (1, 4)


def test_server_cells_come_once_per_count_and_other_modes_once() -> None:
    cells = build_matrix(("gemma-270m",), ("offline", "server"), load_registry(), api_server_counts=(1, 4))
    assert [cell.id for cell in cells] == ["gemma-270m-offline", "gemma-270m-server-api1", "gemma-270m-server-api4"]
    assert len({cell.engine_key for cell in cells}) == 3  # each count is its own server


def test_without_counts_cell_ids_are_as_before() -> None:
    cells = build_matrix(("gemma-270m",), ("server",), load_registry())
    assert [cell.id for cell in cells] == ["gemma-270m-server"]


def test_a_count_starts_vllm_serve_with_the_flag() -> None:
    command = server_command("/m", "m", 8000, {"api_server_count": 4, "max_model_len": 2048})
    assert command[2:5] == ["pytest_vllmbench.engines.vllm_main", "serve", "/m"]
    assert command[command.index("--api-server-count") + 1] == "4"
    plain = server_command("/m", "m", 8000, {"max_model_len": 2048})
    assert plain[2:5] == ["vllm.entrypoints.openai.api_server", "--model", "/m"]
