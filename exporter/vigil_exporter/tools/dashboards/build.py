"""Compile the Grafana dashboards: grafana/src/*.jsonnet -> grafana/dashboards/*.json.

The sources import grafana/lib/ (our small dashboard library), which imports
prometheus/config.libsonnet, so thresholds and selectors are the alerts' own. Output is
deterministic (sorted keys, two-space indent, final newline): building twice gives the same
bytes, and `--check` fails when the committed JSON is not what the sources build.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from vigil_exporter.tools import checkout, generated

SOURCE_DIR = Path("grafana/src")
OUTPUT_DIR = Path("grafana/dashboards")


class BuildError(Exception):
    pass


def find_root(start: Path | None = None) -> Path:
    """The checkout holding the working directory (or `start`)."""
    try:
        return checkout.root(start)
    except checkout.NotACheckout as exc:
        raise BuildError(f"{exc}, or pass --root") from None


def sources(root: Path) -> list[Path]:
    return sorted((root / SOURCE_DIR).glob("*.jsonnet"))


def compile_source(path: Path, root: Path) -> bytes:
    """One dashboard as the bytes of its JSON file."""
    import _jsonnet

    try:
        text = _jsonnet.evaluate_file(str(path), jpathdir=[str(root / "grafana"), str(root)])
    except RuntimeError as exc:
        raise BuildError(f"{path.relative_to(root)}: {exc}") from None
    return dump(json.loads(text))


def dump(document) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def output_path(source: Path, root: Path) -> Path:
    return root / OUTPUT_DIR / (source.stem + ".json")


def build(root: Path) -> dict[Path, bytes]:
    """Every dashboard, compiled in memory: {output path: bytes}."""
    return {output_path(src, root): compile_source(src, root) for src in sources(root)}


@dataclass
class Result:
    written: list[Path]
    unchanged: list[Path]
    stale: list[Path]      # (check) committed file differs from a fresh build or is missing
    orphans: list[Path]    # JSON in grafana/dashboards/ without a source


def run(root: Path, check: bool = False) -> Result:
    built = build(root)
    differing = generated.sync(built, check)
    unchanged = [path for path in built if path not in differing]
    orphans = sorted(set((root / OUTPUT_DIR).glob("*.json")) - set(built))
    if check:
        return Result([], unchanged, differing, orphans)
    return Result(differing, unchanged, [], orphans)


def load_dashboards(root: Path) -> dict[str, dict]:
    """The committed dashboards: {file stem: document}."""
    return {path.stem: json.loads(path.read_text())
            for path in sorted((root / OUTPUT_DIR).glob("*.json"))}
