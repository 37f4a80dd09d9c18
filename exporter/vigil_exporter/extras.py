"""Optional dependencies (the extras of pyproject.toml): a command that needs one checks for it
before doing any work, and says in one line what to install."""
from __future__ import annotations

import importlib


class MissingExtra(Exception):
    """Raised by require(); the message is the one line for the user (exit status 2)."""


def require(module: str, extra: str, command: str) -> None:
    """Import `module` or raise MissingExtra naming the extra that installs it."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"{command}: needs the `{extra}` extra ({module.lstrip('_')} is not "
                           f"installed): pip install 'vigil-exporter[{extra}]', or from a "
                           f"checkout pip install '.[{extra}]'") from None
