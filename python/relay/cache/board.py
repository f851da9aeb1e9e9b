"""Purges that reach every worker of a host: a small shared page that each worker reads.

The memory backend keeps entries in each worker's own memory, and ``DELETE /admin/cache``
reaches one worker. ``relay serve`` makes a page of shared memory before the workers start
(``/dev/shm/relay-cache-<pid>-<hex>``, named in ``RELAY_CACHE_SHM``, removed at exit); a purge
appends a record (what to purge) to a ring and then bumps a counter. Every worker compares the
counter with the last it applied before each look-up (one 8-byte read, no system call) and
applies the records it has not seen; one that fell more than a ring behind purges everything.
Writers take an ``flock`` on the page (purges are rare; a look-up never takes it).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import mmap
import os
import secrets
import struct
from collections.abc import Callable

from relay.storage.memory import stale_segments

VAR = "RELAY_CACHE_SHM"
_DIR = "/dev/shm"
_PREFIX = "relay-cache-"
_SLOTS = 256
# A record: tenant tag and model tag (16 hex digits each, or empty for any).
_RECORD = struct.Struct("16s16s")
_COUNT = struct.Struct("=Q")
SIZE = _COUNT.size + _SLOTS * _RECORD.size

Purge = Callable[[str | None, str | None], object]
_created: tuple[int, str] | None = None


def create_board(environ: dict[str, str] | None = None) -> str:
    """In the main process of ``relay serve``: make the page, name it for the workers."""
    global _created
    _remove_stale()
    path = f"{_DIR}/{_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, SIZE)
    finally:
        os.close(fd)
    _created = (os.getpid(), path)
    (os.environ if environ is None else environ)[VAR] = path
    atexit.register(withdraw_board)
    return path


def withdraw_board() -> None:
    """Remove the page this process made (the main process, at exit)."""
    global _created
    if _created is not None and _created[0] == os.getpid():
        with contextlib.suppress(OSError):
            os.unlink(_created[1])
        _created = None
        os.environ.pop(VAR, None)


def _remove_stale() -> None:
    for name in stale_segments(_PREFIX):
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(_DIR, name))


class Board:
    """A worker's view of the page (see the module docstring)."""

    def __init__(self, path: str) -> None:
        fd = os.open(path, os.O_RDWR)
        try:
            self._map = mmap.mmap(fd, SIZE)
        finally:
            os.close(fd)
        self._path = path
        self.seen = self.count

    @classmethod
    def served(cls) -> Board | None:
        """The page of the ``relay serve`` this worker belongs to (None: not served by it)."""
        path = os.environ.get(VAR)
        if not path:
            return None
        try:
            return cls(path)
        except OSError:
            return None

    @property
    def count(self) -> int:
        """Purges posted since the gateway started."""
        return int(_COUNT.unpack_from(self._map, 0)[0])

    def post(self, tenant: str | None, model: str | None) -> int:
        """Tell every worker to purge (this one included, at its next look-up); the count
        after this purge."""
        fd = os.open(self._path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            count = self.count
            offset = _COUNT.size + (count % _SLOTS) * _RECORD.size
            _RECORD.pack_into(self._map, offset, (tenant or "").encode(), (model or "").encode())
            _COUNT.pack_into(self._map, 0, count + 1)
        finally:
            os.close(fd)  # releases the lock
        return count + 1

    def apply(self, purge: Purge) -> None:
        """Apply the purges posted since the last call (all of them, or everything)."""
        count = self.count
        if count == self.seen:
            return
        if count - self.seen > _SLOTS:
            purge(None, None)
        else:
            for n in range(self.seen, count):
                offset = _COUNT.size + (n % _SLOTS) * _RECORD.size
                tenant, model = _RECORD.unpack_from(self._map, offset)
                purge(tenant.rstrip(b"\0").decode() or None, model.rstrip(b"\0").decode() or None)
        self.seen = count
