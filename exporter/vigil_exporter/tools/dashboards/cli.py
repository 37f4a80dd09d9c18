"""`vigil dashboards build [--check]` and `vigil dashboards render`."""
from __future__ import annotations

import sys
from pathlib import Path

from vigil_exporter.commandline import add_command, add_group


def register(subparsers) -> None:
    commands = add_group(subparsers, "dashboards", help="build or render the Grafana dashboards")

    build = add_command(
        commands, "build", cmd_build, help="compile grafana/src/*.jsonnet into grafana/dashboards/*.json")
    build.add_argument("--check", action="store_true",
                       help="write nothing; fail if a committed dashboard differs from its source")
    build.add_argument("--root", type=Path, help="repository root (default: found from the "
                       "working directory)")
    build.add_argument("--override", metavar="FILE", type=Path,
                       help="the bundle's customisation file (docs/customising.md): its "
                            "thresholds move the panels' lines; needs --output")
    build.add_argument("--output", metavar="DIR", type=Path,
                       help="write the dashboards here instead of grafana/dashboards/")

    render = add_command(
        commands, "render", cmd_render, help="draw every dashboard from a live Prometheus into PNG files")
    render.add_argument("--prometheus", required=True, metavar="URL",
                        help="Prometheus base URL, e.g. http://localhost:9090")
    render.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="directory for the PNG files, one per dashboard (<file name>.png)")
    render.add_argument("--from", dest="since", default="30m", metavar="DURATION",
                        help="time range ending now, e.g. 30m, 6h, 2d (default 30m)")
    render.add_argument("--dashboard", action="append", metavar="UID",
                        help="only this dashboard (uid or file name); repeatable")
    render.add_argument("--root", type=Path, help="repository root")


def cmd_build(args) -> int:
    from vigil_exporter.extras import require
    from vigil_exporter.tools.dashboards.build import BuildError, find_root, run

    require("_jsonnet", "bundle", "vigil dashboards build")
    if args.override and not args.output:
        print("vigil dashboards build: --override needs --output DIR (grafana/dashboards/ keeps "
              "the defaults, which the freshness check compares)", file=sys.stderr)
        return 2
    try:
        root = args.root.resolve() if args.root else find_root()
        result = run(root, check=args.check, overrides=_overrides(args.override),
                     output=args.output)
    except BuildError as exc:
        print(f"vigil dashboards build: {exc}", file=sys.stderr)
        return 2
    rel = lambda p: p.relative_to(root) if p.is_relative_to(root) else p  # noqa: E731
    for path in result.written:
        print(f"wrote {rel(path)}")
    for path in result.stale:
        print(f"{rel(path)} is stale: run `vigil dashboards build`", file=sys.stderr)
    for path in result.orphans:
        print(f"{rel(path)} has no source in grafana/src/", file=sys.stderr)
    if args.check and not (result.stale or result.orphans):
        print(f"{len(result.unchanged)} dashboards are up to date")
    elif not args.check and not result.written:
        print(f"{len(result.unchanged)} dashboards already up to date")
    return 1 if result.stale or result.orphans else 0


def _overrides(path: Path | None) -> dict | None:
    """The customisation file, validated as `vigil bundle build` validates it (a fault is a
    ConfigError: exit 2)."""
    if path is None:
        return None
    from vigil_exporter.tools import bundle, customisation

    overrides = customisation.read(path)
    bundle.validate(overrides, str(path))
    return overrides


def cmd_render(args) -> int:
    from vigil_exporter.extras import require
    from vigil_exporter.tools.dashboards.build import BuildError, find_root
    from vigil_exporter.tools.dashboards.render import RenderError, parse_duration, render_all

    require("matplotlib", "render", "vigil dashboards render")
    try:
        root = args.root.resolve() if args.root else find_root()
        since = parse_duration(args.since)
        written = render_all(root, args.prometheus, args.out, since, only=args.dashboard)
    except (BuildError, RenderError, ValueError) as exc:
        print(f"vigil dashboards render: {exc}", file=sys.stderr)
        return 2
    for path, empty in written:
        note = f" ({len(empty)} panels without data: {', '.join(empty)})" if empty else ""
        print(f"wrote {path}{note}")
    return 0
