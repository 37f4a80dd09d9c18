"""Generated files that are committed: write those whose content changed, or, to check, only
report them (the tests and `--check` fail on a stale file)."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def sync(files: Mapping[Path, bytes | str], check: bool = False) -> list[Path]:
    """The files whose content on disk differs from `files` (or that are missing); written unless
    `check`. Text is written as UTF-8."""
    differing = []
    for path, content in files.items():
        data = content.encode() if isinstance(content, str) else content
        if path.exists() and path.read_bytes() == data:
            continue
        differing.append(path)
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return differing
