"""README's Layout section names every module of the package, in the folder it lives in, and nothing else."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pytest_vllmbench"


def _layout_modules() -> set[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Layout", 1)[1].split("```", 2)[1]
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


def test_the_readme_layout_lists_exactly_the_package_modules():
    actual = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py" and "_data" not in path.parts
    }
    assert _layout_modules() == actual
