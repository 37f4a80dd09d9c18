"""CPU work in a forked child process, so that it does not hold this process's GIL.

A thread of the exporter that formats 180,000 samples (10,000 tenants) holds the GIL for
hundreds of milliseconds in all; the interpreter hands it to the event loop every switch
interval, but only while the thread is running: on a busy machine the kernel often preempts the
thread while it holds the GIL, and every request waits until it is scheduled again.
`in_child(func, *args)` runs `func` in a child made by `os.fork()` instead: the child sees the
parent's objects as they were at the fork (copy-on-write, nothing to serialise on the way in),
pickles its result into a pipe and exits; the calling thread waits for that result with the
GIL released, so the loop competes with the child only for a CPU, as with any other process.

What the child runs must only compute (format, compress): it starts with this one thread, and a
lock that another thread of the parent held at the fork stays held in the child. A failed child
gives `ChildFailed`; without `os.fork` (not POSIX) `func` runs in the calling thread.
"""
from __future__ import annotations

import gc
import os
import pickle
import warnings
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

CAN_FORK = hasattr(os, "fork")
# Python 3.12 warns on every fork of a process with threads; what a child runs here takes no
# lock (module docstring), so the warning says nothing new.
warnings.filterwarnings("ignore", message=r".*use of fork\(\) may lead to deadlocks",
                        category=DeprecationWarning)


class ChildFailed(RuntimeError):
    """The child raised, was killed, or exited without a result."""


def in_child(func: Callable[..., T], *args) -> T:
    """`func(*args)` in a forked child, its result pickled back; in this thread if fork is
    not available."""
    if not CAN_FORK:
        return func(*args)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: compute, write, exit without running the parent's exit handlers
        code = 1
        try:
            os.close(read_end)
            gc.disable()  # it lives for one call: freeing at exit is the kernel's job
            with open(write_end, "wb") as pipe:
                pickle.dump(func(*args), pipe, protocol=pickle.HIGHEST_PROTOCOL)
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        with open(read_end, "rb") as pipe:  # the read releases the GIL while it waits
            return pickle.load(pipe)
    except (EOFError, pickle.UnpicklingError) as exc:
        raise ChildFailed(f"the child computing {getattr(func, '__name__', func)} "
                          "ended without a result") from exc
    finally:
        os.waitpid(pid, 0)
