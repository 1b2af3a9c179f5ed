import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from saved_runs import cell, save_run

from pytest_vllmbench.results.markdown_table import markdown_table
from pytest_vllmbench.results.report import render
from pytest_vllmbench.results.storage import load_runs

_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")
# no backslash: a cell's own "\|" would read back ambiguously
texts = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\\"), max_size=30)


def _read_back(line: str) -> list[str]:
    return [part.strip().replace("\\|", "|") for part in _UNESCAPED_PIPE.split(line[2:-2])]


@given(st.integers(1, 5).flatmap(lambda width: st.lists(st.lists(texts, min_size=width, max_size=width), max_size=6)))
def test_every_row_is_one_line_and_reads_back_as_its_cells(rows):
    width = len(rows[0]) if rows else 2
    lines = markdown_table(rows, [f"h{i}" for i in range(width)]).split("\n")
    assert len(lines) == len(rows) + 2 and lines[1] == "|" + "---|" * width
    for line, row in zip(lines[2:], rows, strict=True):
        assert _read_back(line) == [" ".join(value.split()) for value in row]


def test_a_longer_cell_in_a_new_row_leaves_the_rows_above_as_they_were():
    before = markdown_table([["a", "ok"]], ["Run", "Status"])
    after = markdown_table([["a", "ok"], ["b", "skipped: no tokenizer available offline"]], ["Run", "Status"])
    assert after.startswith(before + "\n")


def test_a_new_run_adds_history_rows_without_rewriting_the_earlier_ones(tmp_path):
    save_run(tmp_path, 1, "first", [cell(requests_per_s=1.0)], when="2026-11-28T10:00:00")
    earlier = render(load_runs(tmp_path)).split("## History")[1].splitlines()
    skipped = cell("gemma-270m-server", status="skipped: gemma-270m: no tokenizer available offline for dummy weights")
    save_run(tmp_path, 2, "second", [skipped], when="2026-11-29T10:00:00")
    later = render(load_runs(tmp_path)).split("## History")[1].splitlines()
    assert any("no tokenizer available offline" in line for line in later)
    old_row = next(line for line in earlier if "0001_first" in line)
    assert old_row in later


def test_a_table_without_columns_or_with_a_short_row_is_refused():
    with pytest.raises(ValueError, match="at least one column"):
        markdown_table([], [])
    with pytest.raises(ValueError, match="a row of 1 cells under 2 headers"):
        markdown_table([["a", "b"], ["c"]], ["x", "y"])
