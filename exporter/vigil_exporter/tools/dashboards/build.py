"""Compile the Grafana dashboards: grafana/src/*.jsonnet -> grafana/dashboards/*.json.

The sources import grafana/lib/ (our small dashboard library), which imports
prometheus/config.libsonnet, so thresholds and selectors are the alerts' own; with a
customisation (`--override FILE`, docs/customising.md) that file's `_config` is merged in, so a
threshold moved for an alert moves its panel's line too. Output is
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


def compile_source(path: Path, root: Path, overrides: dict | None = None) -> bytes:
    """One dashboard as the bytes of its JSON file; `overrides` merged into `_config` as the
    rules merge them (vigil_exporter.tools.bundle.evaluate)."""
    import _jsonnet

    callback = _overriding_import(root, overrides) if overrides else None
    try:
        text = _jsonnet.evaluate_file(str(path), jpathdir=[str(root / "grafana"), str(root)],
                                      **({"import_callback": callback} if callback else {}))
    except RuntimeError as exc:
        raise BuildError(f"{path.relative_to(root)}: {exc}") from None
    return dump(json.loads(text))


def _overriding_import(root: Path, overrides: dict):
    """A Jsonnet import callback that finds files as the library paths do, and hands out
    prometheus/config.libsonnet with `overrides` merged into its `_config`."""
    config = (root / "prometheus" / "config.libsonnet").resolve()
    patch = json.dumps(overrides, sort_keys=True)

    def find(directory: str, rel: str):
        for base in (Path(directory), root / "grafana", root):
            path = (base / rel).resolve()
            if path.is_file():
                text = path.read_text(encoding="utf-8")
                if path == config:
                    text = f"({text}) + {{ _config:: std.mergePatch(super._config, {patch}) }}"
                return str(path), text.encode()
        raise RuntimeError(f"cannot find {rel} (from {directory})")

    return find


def dump(document) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def output_path(source: Path, root: Path) -> Path:
    return root / OUTPUT_DIR / (source.stem + ".json")


def build(root: Path, overrides: dict | None = None) -> dict[Path, bytes]:
    """Every dashboard, compiled in memory: {output path: bytes}."""
    return {output_path(src, root): compile_source(src, root, overrides)
            for src in sources(root)}


@dataclass
class Result:
    written: list[Path]
    unchanged: list[Path]
    stale: list[Path]      # (check) committed file differs from a fresh build or is missing
    orphans: list[Path]    # JSON in grafana/dashboards/ without a source


def run(root: Path, check: bool = False, overrides: dict | None = None,
        output: Path | None = None) -> Result:
    """Build every dashboard into grafana/dashboards/, or into `output` (a site's own build)."""
    built = build(root, overrides)
    if output is not None:
        built = {Path(output) / path.name: data for path, data in built.items()}
    differing = generated.sync(built, check)
    unchanged = [path for path in built if path not in differing]
    orphans = [] if output is not None else sorted(set((root / OUTPUT_DIR).glob("*.json"))
                                                   - set(built))
    if check:
        return Result([], unchanged, differing, orphans)
    return Result(differing, unchanged, [], orphans)


def load_dashboards(root: Path) -> dict[str, dict]:
    """The committed dashboards: {file stem: document}."""
    return {path.stem: json.loads(path.read_text())
            for path in sorted((root / OUTPUT_DIR).glob("*.json"))}
