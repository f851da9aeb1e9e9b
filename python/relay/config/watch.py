"""What starts a hot reload in ``relay serve``'s main process: the config file changing (looked
at four times a second) and SIGHUP; one thread runs the reloads, one at a time.

**Polled, not watched.** A thread ``stat``s the file every :data:`POLL_S` (following
symlinks): its device, inode, size, and modification and change times. An editor that saves by
renaming a new file over the old one, and a Kubernetes ConfigMap volume (which swaps a
``..data`` symlink to a new directory), give the path a new inode, so both are seen; so is a
file restored with its old modification time (``cp -p``), whose change time is new. A watch on
the file's directory (inotify, as watchfiles did here) woke the main process on every write to
any file there: with the SQLite ledger beside the config, on every ledger write (1 to 2 us of
CPU per relayed stream, benches/README.md). Four ``stat`` calls a second cost a few
microseconds a second, however busy the directory.

**Debounced.** Once the file changes, it is read only when it has been quiet for
:data:`QUIET_S` (at most :data:`MAX_HOLD_S` after the change was seen), so an editor's or a
``cp``'s successive writes are read once, after the last. A file caught half-written all the
same fails validation and is refused (the running configuration stays), and the write that
completes it is a change of its own. A change that leaves the file's bytes as they were (a
``touch``) starts no reload.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("relay")

# How often the file is looked at; how long it must stay unchanged before it is read; the
# longest a burst of changes is held back.
POLL_S = 0.25
QUIET_S = 0.2
MAX_HOLD_S = 0.6

Signature = tuple[int, int, int, int, int] | None


def _signature(path: Path) -> Signature:
    """What changes when the file at ``path`` (symlinks followed) is written or replaced;
    None while it is missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:  # being replaced, or removed: the next change says what became of it
        return None


def _quiet(path: Path, seen: Signature, stop: threading.Event) -> Signature:
    """Wait until the file's signature holds for :data:`QUIET_S` (or :data:`MAX_HOLD_S` have
    passed, or ``stop`` is set); its signature then."""
    deadline = time.monotonic() + MAX_HOLD_S
    while not stop.wait(QUIET_S):
        now = _signature(path)
        if now == seen or time.monotonic() >= deadline:
            return now
        seen = now
    return seen


def watch_file(path: Path, changed: Callable[[], None], stop: threading.Event) -> threading.Thread:
    """Call ``changed()`` (on a daemon thread) each time ``path``'s bytes change, until
    ``stop`` is set."""

    def run() -> None:
        last, seen = _read(path), _signature(path)
        try:
            while not stop.wait(POLL_S):
                now = _signature(path)
                if now == seen:
                    continue
                seen = _quiet(path, now, stop)
                data = _read(path)
                if data is None or data == last:
                    continue
                last = data
                changed()
        except Exception:  # the gateway keeps serving; SIGHUP still reloads
            log.exception("watching %s failed: edits are no longer applied (SIGHUP still is)", path)

    thread = threading.Thread(target=run, name="relay-config-watch", daemon=True)
    thread.start()
    return thread


class ReloadQueue:
    """Runs ``reload(why)`` on its own thread, one at a time; requests that arrive during a
    reload are folded into one more. :meth:`request` may be called from a signal handler."""

    def __init__(self, reload: Callable[[str], object]) -> None:
        self._reload = reload
        # SimpleQueue.put is reentrant: safe in a signal handler that interrupts the thread.
        self._requests: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="relay-config-reload", daemon=True)

    def start(self) -> None:
        """Start taking requests."""
        self._thread.start()

    def request(self, why: str) -> None:
        """Ask for a reload (``why`` is logged)."""
        self._requests.put(why)

    def stop(self) -> None:
        """Finish the reload under way, then stop."""
        self._requests.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while (why := self._requests.get()) is not None:
            reasons = [why]
            with contextlib.suppress(queue.Empty):
                while (more := self._requests.get_nowait()) is not None:
                    reasons.append(more)
                else:  # a stop arrived behind the reloads: do them, then stop
                    self._reload(", ".join(dict.fromkeys(reasons)))
                    return
            self._reload(", ".join(dict.fromkeys(reasons)))
