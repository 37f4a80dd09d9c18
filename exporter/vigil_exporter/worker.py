"""The exporter's one worker thread, for CPU work that must not hold the event loop: renders of
the exposition and business results turned into samples (hundreds of milliseconds with
10,000 tenants).

One thread rather than a pool: the work is CPU-bound under one GIL, so more threads would only
compete with each other and with the loop; one at a time also bounds how many results are being
converted at once, and keeps the large buffers in one malloc arena (a pool of six threads grew
the resident memory per sample by about 40 %, docs/performance.md).
"""
from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-worker")


async def off_loop(func: Callable[..., T], *args) -> T:
    """`func(*args)` in the worker thread, after the work queued before it."""
    return await asyncio.get_running_loop().run_in_executor(
        _EXECUTOR, functools.partial(func, *args))


def _libc_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to trim
        return None


_MALLOC_TRIM = _libc_trim()


def give_back_memory() -> None:
    """Return the heap's free pages to the system (glibc's malloc_trim; the call releases the
    GIL). A round with 10,000 tenants frees tens of megabytes of rows and texts, but glibc
    keeps freed memory for reuse, in the arena of each thread that used it, and the resident
    size stays at the round's peak: after a render it goes back to what the exporter holds
    (docs/performance.md)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
