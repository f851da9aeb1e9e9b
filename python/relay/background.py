"""Threads that work beside a worker's event loop (the ledger's SQLite writer, the access-line
writer) run at a lower scheduling priority than the loop.

A worker often has one core to itself (one worker per core, a CPU limit of one). There, a
writer committing a batch of ledger rows held the core for milliseconds while requests
waited: at 1,000 requests/s the flush every half second was the tail (benches/README.md,
"Background threads"). At nice 10 the kernel gives the core back to the loop as soon as the
loop can run, and the writer catches up in the gaps; the work is the same, only who waits
changes. Not lower than 10: a writer preempted while it holds the GIL makes the loop wait
until it runs again, and at nice 19 it would get almost no CPU beside busy processes.
``RELAY_BACKGROUND_NICE`` overrides the value (0 keeps the loop's priority).

The threads also carry their Python name in the kernel (``relay-sqlite_0``, ``relay-log``), so
``top -H``, ``ps -L`` and ``benches/compare.py`` tell their CPU from the loop's.
"""

from __future__ import annotations

import contextlib
import os
import threading


def background_nice() -> int:
    """The nice value background threads take (``RELAY_BACKGROUND_NICE``, default 10)."""
    value = os.environ.get("RELAY_BACKGROUND_NICE", "").strip()
    try:
        return max(0, min(19, int(value))) if value else 10
    except ValueError:
        return 10


def lower_priority() -> None:
    """Give the calling thread the background nice value and its Python name in the kernel.
    On Linux a thread is its own scheduling task, so the event loop's thread keeps its
    priority; elsewhere, or where the call is refused, the thread keeps its own."""
    name_thread(threading.current_thread().name)
    nice = background_nice()
    if nice:
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


def name_thread(name: str) -> None:
    """Name the calling thread for the kernel (``/proc/<pid>/task/<tid>/comm``: at most 15
    bytes, so the name is cut there); nothing happens where that file does not exist."""
    path = f"/proc/self/task/{threading.get_native_id()}/comm"
    with contextlib.suppress(OSError), open(path, "w") as comm:
        comm.write(name.encode("ascii", "replace").decode()[:15])
