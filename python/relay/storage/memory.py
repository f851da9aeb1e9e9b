"""GCRA cells shared by every worker of one host: :class:`SharedMemoryStore`.

A :class:`~relay.storage.limits.LimitStore` on the native :class:`SharedLimitTable`: a fixed
table of cells in POSIX shared memory that every worker process maps, updated with atomic
compare-and-swap and no lock (rust/src/shared_table.rs). A decision is one native call of a
few hundred nanoseconds, made on the event loop: nothing awaits, and no Python runs between
reading a cell and charging it. With a limit of N, exactly N pass however requests are spread
over the workers.

Lifecycle under ``relay serve``: the main process creates the segment before granian starts
the workers (:func:`create_served`) and hands its name to them in the environment
(:data:`SEGMENT_VAR`, inherited by forked and spawned workers alike, like the path of the
configuration's file). A worker attaches by name on first use (:func:`served_store`), so a
worker respawned after a crash, or restarted on SIGHUP, finds the cells as they were. The main
process removes the name when it exits (:func:`withdraw_served`, also on SIGTERM and SIGINT);
one left behind by a gateway that was killed is removed by the next start as the same user.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
from collections.abc import Mapping, MutableMapping, Sequence

from relay.native import SharedLimitTable
from relay.pidfile import pid_alive
from relay.storage.limits import CellState, Charge, Decision

SEGMENT_VAR = "RELAY_LIMITS_SHM"
# 262,144 cells (6 MiB, allocated by the kernel as cells are used). A key may use the 32 slots
# of its bucket: with 100,000 limits that have not reset at once, the chance that one of the
# 8,192 buckets is full is about 1 in 200.
DEFAULT_SLOTS = 1 << 18
_PREFIX = "relay-limits-"
# Where Linux shows POSIX shared memory (for the clean-up of segments left by killed gateways).
_SHM_DIR = "/dev/shm"


class SharedMemoryStore:
    """:class:`~relay.storage.limits.LimitStore` in shared memory, for the workers of a host.

    ``take`` and ``adjust`` raise :class:`relay.native.LimitTableFull` when a key finds every
    slot it may use held by a limit that has not reset (nothing is charged then; give the table
    more slots), and :class:`relay.native.NativeError` for a limit that is not valid (a rate
    or burst below what GCRA takes). ``now`` is for tests: CLOCK_MONOTONIC seconds.
    """

    __slots__ = ("_table",)

    def __init__(self, table: SharedLimitTable) -> None:
        self._table = table

    @classmethod
    def create(cls, name: str, slots: int = DEFAULT_SLOTS) -> SharedMemoryStore:
        """Make the segment ``name`` for ``slots`` cells (the main process, before workers)."""
        return cls(SharedLimitTable.create(name, slots))

    @classmethod
    def attach(cls, name: str) -> SharedMemoryStore:
        """Map the segment another process created (FileNotFoundError if there is none)."""
        return cls(SharedLimitTable.attach(name))

    @property
    def name(self) -> str:
        """The segment's name (``/dev/shm/<name>`` on Linux)."""
        return self._table.name

    @property
    def table(self) -> SharedLimitTable:
        """The native table (its size and counters, for metrics)."""
        return self._table

    def unlink(self) -> bool:
        """Remove the segment's name; processes that mapped it keep their cells. False if it
        was already gone."""
        return SharedLimitTable.unlink(self._table.name)

    async def take(self, charges: Sequence[Charge], *, now: float | None = None) -> Decision:
        """Charge every one of ``charges`` if all fit, else none (one atomic decision)."""
        return self._table.take(charges, CellState, Decision, now)

    async def adjust(self, charges: Sequence[Charge], *, now: float | None = None) -> None:
        """Give back (negative cost, never below empty) or charge over (positive cost)."""
        self._table.adjust(charges, now)


# The segment this process created (main process) or attached (worker), with the pid that did:
# a forked worker inherits the parent's module state but must attach for itself.
_created: tuple[int, SharedMemoryStore] | None = None
_attached: tuple[int, SharedMemoryStore] | None = None


def create_served(
    slots: int = DEFAULT_SLOTS, environ: MutableMapping[str, str] | None = None
) -> SharedMemoryStore:
    """In the main process of ``relay serve``, before the workers start: make the segment and
    name it in the environment the workers inherit. Removed at exit (:func:`withdraw_served`)."""
    global _created
    target = os.environ if environ is None else environ
    _remove_stale()
    store = SharedMemoryStore.create(f"{_PREFIX}{os.getpid()}-{secrets.token_hex(4)}", slots)
    _created = (os.getpid(), store)
    target[SEGMENT_VAR] = store.name
    atexit.register(withdraw_served)
    return store


def withdraw_served(environ: MutableMapping[str, str] | None = None) -> None:
    """Remove the segment this process created, if any (the main process, at exit)."""
    global _created
    if _created is not None and _created[0] == os.getpid():
        with contextlib.suppress(OSError):
            _created[1].unlink()
        _created = None
        (os.environ if environ is None else environ).pop(SEGMENT_VAR, None)


def served_store(environ: Mapping[str, str] | None = None) -> SharedMemoryStore | None:
    """This worker's store, attached on first use: None when not served by ``relay serve``
    (granian run directly, tests in process). FileNotFoundError if the segment named in the
    environment is gone (the main process that made it has exited)."""
    global _attached
    name = (os.environ if environ is None else environ).get(SEGMENT_VAR)
    if not name:
        return None
    pid = os.getpid()
    if _attached is None or _attached[0] != pid or _attached[1].name != name:
        _attached = (pid, SharedMemoryStore.attach(name))
    return _attached[1]


def _remove_stale() -> None:
    """Remove the segments of gateways of this user that were killed (their pid is gone)."""
    for name in stale_segments(_PREFIX):
        with contextlib.suppress(OSError):
            SharedLimitTable.unlink(name)


def stale_segments(prefix: str) -> list[str]:
    """Names of this user's shared-memory segments ``<prefix><pid>-...`` whose gateway is gone:
    its pid is not running, or is this process's own (a gateway killed before this one got
    the pid: pid 1 in containers)."""
    stale: list[str] = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(_SHM_DIR):
            if not entry.name.startswith(prefix):
                continue
            with contextlib.suppress(OSError, ValueError):
                pid = int(entry.name[len(prefix) :].split("-", 1)[0])
                if entry.stat(follow_symlinks=False).st_uid != os.getuid():
                    continue
                if pid == os.getpid() or not pid_alive(pid):
                    stale.append(entry.name)
    return stale
