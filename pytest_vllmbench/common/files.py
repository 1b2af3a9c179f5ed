"""File helpers: write a file or build a folder completely or not at all (temp + rename), hash a file."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


def refuse_non_regular(path: Path) -> None:
    """OSError when `path` exists as anything but a plain file: a symlink (perhaps planted to point at
    another file), a FIFO (opening it would hang), a device or a folder is never written over."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        kind = "a symlink" if stat.S_ISLNK(mode) else "not a regular file"
        raise OSError(f"{path} is {kind}; not overwritten")


FIRST_LINE_BYTES = 2**20  # more than any first line this tool writes; a file without line breaks is not read whole


def refuse_foreign(path: Path, written_here: Callable[[Path], bool]) -> None:
    """OSError unless `path` is absent or a plain file that `written_here` recognises as this tool's own."""
    refuse_non_regular(path)
    if path.exists() and path.stat().st_size > 0 and not written_here(path):  # an empty file has nothing to lose
        raise OSError(f"{path} exists and was not written by pytest-vllmbench; not overwritten")


def first_line_json(path: Path) -> object:
    """The first line of a plain file, parsed; None where it cannot be read or parsed."""
    try:
        with open(open_regular_file(path), encoding="utf-8") as handle:
            return json.loads(handle.readline(FIRST_LINE_BYTES) or "null")
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def read_plain_text(path: Path, max_bytes: int) -> str:
    """A regular file's text (through a symlink too), or OSError: a FIFO would block the read forever, a device such
    as /dev/zero never ends, and a file over `max_bytes` is not one this tool wrote."""
    return read_plain_bytes(path, max_bytes).decode("utf-8")


def read_plain_bytes(path: Path, max_bytes: int) -> bytes:
    """read_plain_text's bytes, not decoded."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode):
            raise OSError("not a regular file")
        if found.st_size > max_bytes:
            raise OSError(f"{found.st_size:,} bytes, over the {max_bytes:,} this tool reads")
        return handle.read(max_bytes + 1)


def open_regular_file(path: Path) -> int:
    """A read-only descriptor of `path`, never through a symlink and never blocking on a FIFO."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path} is not a regular file")
    return fd


@contextmanager
def atomic_writer(path: Path) -> Iterator[TextIO]:
    path.parent.mkdir(parents=True, exist_ok=True)
    refuse_non_regular(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            yield handle
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_writer(path) as handle:
        handle.write(text)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Like write_text_atomic, for binary files (plots)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    refuse_non_regular(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def folder_built_in_place(target: Path) -> Iterator[Path]:
    """A temp folder beside `target`, renamed to it when the block succeeds: `target` is whole or absent."""
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield work
        if target.exists():
            shutil.rmtree(target)
        os.replace(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
