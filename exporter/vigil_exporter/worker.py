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
