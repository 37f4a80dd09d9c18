"""Where the checkout is: from `VIGIL_CHECKOUT`, else the working directory or the nearest parent
that holds the bundle, the way git finds its repository."""
from __future__ import annotations

import os
from pathlib import Path

# Files that only a checkout of the Vigil repository has together.
MARKERS = ("prometheus/mixin.libsonnet", "alertmanager/alertmanager.yml", "grafana/src")


class NotACheckout(Exception):
    """Raised by `root()`; its message is one line for the user."""


def is_checkout(path: Path) -> bool:
    return all((path / marker).exists() for marker in MARKERS)


def root(start: Path | None = None) -> Path:
    """The checkout holding `start` (default: the working directory)."""
    explicit = os.environ.get("VIGIL_CHECKOUT")
    if explicit:
        path = Path(explicit).resolve()
        if not is_checkout(path):
            raise NotACheckout(f"VIGIL_CHECKOUT={explicit} is not a checkout of the Vigil "
                               f"repository (it needs {', '.join(MARKERS)})")
        return path
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if is_checkout(candidate):
            return candidate
    raise NotACheckout(f"{here} is not inside a checkout of the Vigil repository: run this "
                       "command from the checkout (or set VIGIL_CHECKOUT to it)")
