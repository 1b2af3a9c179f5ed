"""The docs keep step with the code: the Layout lists every package module, the option table every option."""

import re
from pathlib import Path

from pytest_vllmbench.config.settings import OPTIONS

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pytest_vllmbench"
DOCS = ROOT / "docs"


def _layout_modules() -> set[str]:
    page = (DOCS / "developing.md").read_text(encoding="utf-8")
    block = page.split("## Layout", 1)[1].split("```", 2)[1]
    listed, folder = set(), ""
    for line in block.splitlines():
        heading = re.match(r"^  ([a-z_]+/|[a-z_]+\.py)\s", line)
        if heading:
            folder = heading[1] if heading[1].endswith("/") else ""
        elif not line.startswith("    "):
            folder = None  # a top-level entry (benchmarks/, tests/, ...): not part of the package
        if folder is None:
            continue
        for name in re.findall(r"\b([a-z_]+\.py)\b", line):
            listed.add(folder + name)
    return listed


def test_the_layout_lists_exactly_the_package_modules():
    actual = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py" and "_data" not in path.parts
    }
    assert _layout_modules() == actual


def _option_rows() -> list[tuple[str, str, str]]:
    page = (DOCS / "running.md").read_text(encoding="utf-8")
    return re.findall(r"^\| `--([a-z-]+)[^`]*` \| `([a-z_]+)` \| `([a-z_]+)` \|", page, flags=re.M)


def test_the_option_table_names_every_option_with_its_pyproject_and_ini_twins_in_order():
    assert _option_rows() == [(option.name, option.key, option.ini_name) for option in OPTIONS]


def test_the_readme_stays_a_five_minute_read():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 150
