"""Where the running `vigil stack up` is: a small JSON file written when the stack is up and
removed when it stops, so that `vigil alerts`, `vigil slo status` and `vigil usage` in another
shell find the stack's Alertmanager, alert log and Prometheus without flags (even with
--free-ports).

The file is `$VIGIL_STACK_STATE`, else `$XDG_RUNTIME_DIR/vigil/stack.json`, else
`~/.cache/vigil/stack.json`. A file left by a stack that died is ignored: its process is gone,
or its pid now belongs to another process (the start time recorded beside the pid differs).
"""
from __future__ import annotations

import json
import os
from pathlib import Path


def path() -> Path:
    explicit = os.environ.get("VIGIL_STACK_STATE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_RUNTIME_DIR")
    return (Path(base) if base else Path.home() / ".cache") / "vigil" / "stack.json"


def write(state: dict) -> Path:
    """Record the stack of this process: {"alertmanager": URL, "alert_log": PATH, ...}."""
    import psutil

    target = path()
    target.parent.mkdir(parents=True, exist_ok=True)
    me = {"pid": os.getpid(), "started": psutil.Process().create_time()}
    target.write_text(json.dumps({**state, **me}, indent=2) + "\n")
    return target


def clear() -> None:
    """Remove the file if this process wrote it."""
    if running().get("pid") == os.getpid():
        path().unlink(missing_ok=True)


def running() -> dict:
    """The running stack's entries, or {} when there is none."""
    try:
        state = json.loads(path().read_text())
    except (OSError, ValueError):
        return {}  # no stack: psutil (imported below) is not needed
    import psutil

    try:
        alive = psutil.Process(int(state["pid"])).create_time() == state["started"]
    except (OSError, ValueError, KeyError, TypeError, psutil.Error):
        return {}
    return state if alive else {}


def default(variable: str, key: str, fallback: str) -> str:
    """A command's default: the environment variable, else the running stack's entry, else
    `fallback`."""
    return os.environ.get(variable) or running().get(key) or fallback
