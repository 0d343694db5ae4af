"""Finding and reading runbook files, and naming each as a source. No Django import.

A source is named by its path relative to the root of the import (``teamA/ops.md`` and
``teamB/ops.md`` are two sources), or by ``--source NAME`` for a single file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ops.runbooks.parser import RunbookError

MAX_RUNBOOK_BYTES = 10 * 1024 * 1024
MAX_SOURCE_NAME = 255
RUNBOOK_SUFFIXES = (".md", ".markdown")


@dataclass
class RunbookFile:
    name: str  # the source's identity
    data: bytes


@dataclass
class RunbookFiles:
    files: list[RunbookFile]
    root: str  # the resolved root the names are relative to; "" for --source
    # Directories imported whole (relative to the root, "" for the root itself): a source
    # imported from one of them before whose file is gone has its checklists retired.
    directories: list[str]


def runbook_files_collect(
    *, paths: list[str], root: str | None = None, source: str | None = None
) -> RunbookFiles:
    """Read every file named, and every ``*.md`` under every directory named, before anything
    is planned or written. Raises RunbookError naming the path and the reason."""
    base = Path(root or ".").resolve()
    if not base.is_dir():
        raise RunbookError(f"{root}: the root is not a directory")
    if source is not None:
        return _single_source(paths, source)
    files: dict[str, RunbookFile] = {}
    directories: list[str] = []
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise RunbookError(f"{given}: no such file")
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.suffix.lower() in RUNBOOK_SUFFIXES and p.is_file()
            )
            if not found:
                raise RunbookError(f"{given}: no Markdown files (*.md) in this directory")
            directories.append(_name(path, base, given))
            for file in found:
                name = _name(file, base, str(file))
                files.setdefault(name, RunbookFile(name, _read(file, str(file))))
        elif path.is_file():
            name = _name(path, base, given)
            files.setdefault(name, RunbookFile(name, _read(path, given)))
        else:
            raise RunbookError(f"{given}: not a file")
    return RunbookFiles(list(files.values()), str(base), directories)


def _single_source(paths: list[str], source: str) -> RunbookFiles:
    if len(paths) != 1:
        raise RunbookError(f"--source names one file; {len(paths)} paths were given")
    name = source.strip()
    parts = PurePosixPath(name).parts
    if (
        not name
        or len(name) > MAX_SOURCE_NAME
        or name.startswith("/")
        or ".." in parts
        or re.search(r"[\x00-\x1f\\]", name)
    ):
        raise RunbookError(
            f"--source {source!r}: a source name is a relative path of 1 to "
            f"{MAX_SOURCE_NAME} characters, without '..', backslashes or control characters"
        )
    path = Path(paths[0])
    if not path.exists():
        raise RunbookError(f"{paths[0]}: no such file")
    if not path.is_file():
        raise RunbookError(f"{paths[0]}: not a file (--source names one file)")
    return RunbookFiles([RunbookFile(name, _read(path, paths[0]))], "", [])


def _name(path: Path, base: Path, given: str) -> str:
    try:
        relative = path.resolve().relative_to(base)
    except ValueError:
        raise RunbookError(
            f"{given}: is outside the root {base}; pass --root DIR (a directory holding it) "
            "or --source NAME"
        ) from None
    name = relative.as_posix()
    if name == ".":
        return ""
    if len(name) > MAX_SOURCE_NAME:
        raise RunbookError(f"{given}: the path is over {MAX_SOURCE_NAME} characters")
    return name


def _read(path: Path, given: str) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_RUNBOOK_BYTES:
            raise RunbookError(
                f"{given}: is {size:,} bytes; a runbook may have at most {MAX_RUNBOOK_BYTES:,}"
            )
        return path.read_bytes()
    except OSError as error:
        raise RunbookError(f"{given}: cannot be read ({error.strerror})") from error
