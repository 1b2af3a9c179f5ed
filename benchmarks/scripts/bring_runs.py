"""Bring one device call's results into this checkout: `python benchmarks/scripts/bring_runs.py FILES_AT CARD`.

FILES_AT is the folder a `device` call's $OUT came back in: runs/*.json (pytest-benchmark saves) and *.log.
The lent machine keeps no untracked file between calls, so every call numbers its run after the committed ones
and two calls' runs can share a number: each run gets the next free number here instead. A run already here
(the same bytes) is skipped, whatever its number; another run of the same name is brought under a new number; a log
is copied into benchmarks/results/CARD/ and never overwrites.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STORAGE = REPO / ".benchmarks" / "Linux-CPython-3.12-64bit"  # the device image's Python; its runs' folder
NUMBERED = re.compile(r"^(\d{4})_(.+\.json)$")


def numbers_in(folder: Path) -> list[int]:
    return [int(match.group(1)) for path in folder.glob("*.json") if (match := NUMBERED.match(path.name))]


def bring_runs(files_at: Path, storage: Path = STORAGE) -> list[str]:
    storage.mkdir(parents=True, exist_ok=True)
    brought = []
    for path in sorted((files_at / "runs").glob("*.json")):
        match = NUMBERED.match(path.name)
        if not match:
            print(f"skipped {path.name}: not a numbered pytest-benchmark save", file=sys.stderr)
            continue
        name, content = match.group(2), path.read_bytes()
        same = [here.name for here in storage.glob(f"*_{name}") if here.read_bytes() == content]
        if same:
            print(f"already here as {same[0]}", file=sys.stderr)
            continue
        target = storage / f"{max(numbers_in(storage), default=0) + 1:04d}_{name}"
        shutil.copyfile(path, target)
        brought.append(target.name)
    return brought


def bring_logs(files_at: Path, card: str, results: Path = REPO / "benchmarks" / "results") -> list[str]:
    target = results / card
    target.mkdir(parents=True, exist_ok=True)
    brought = []
    for path in sorted([*files_at.glob("*.log"), *files_at.glob("*.csv")]):
        if (target / path.name).exists():
            if (target / path.name).read_bytes() != path.read_bytes():
                print(
                    f"kept the existing {target / path.name}: the new one differs, rename it by hand", file=sys.stderr
                )
            continue
        shutil.copyfile(path, target / path.name)
        brought.append(str(target / path.name))
    return brought


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    files_at, card = Path(argv[0]), argv[1]
    if not files_at.is_dir():
        print(f"{files_at}: no such folder", file=sys.stderr)
        return 2
    for line in [*bring_runs(files_at), *bring_logs(files_at, card)]:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
