"""How a module adds its commands to `vigil`'s parser (its `register(subparsers)`)."""
from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable

Handler = Callable[[argparse.Namespace], "int | None"]


def add_group(subparsers, name: str, help: str, description: str | None = None):
    """`vigil NAME COMMAND ...`: returns the subparsers the group's commands are added to."""
    group = subparsers.add_parser(name, help=help, description=description)
    return group.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")


def add_command(subparsers, name: str, run: Handler, help: str) -> argparse.ArgumentParser:
    """A command that calls `run(args)`; the description its --help shows is `run`'s docstring."""
    parser = subparsers.add_parser(name, help=help, description=inspect.getdoc(run))
    parser.set_defaults(func=run)
    return parser
