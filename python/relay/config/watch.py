"""What starts a hot reload in ``relay serve``'s main process: the config file changing (watched
with watchfiles) and SIGHUP; one thread runs the reloads, one at a time.

**Debounced.** watchfiles reports a burst of changes only once the file has been quiet for
:data:`QUIET_MS`, so an editor's or a ``cp``'s successive writes are read once, after the last.
A file caught half-written all the same fails validation and is refused (the running
configuration stays), and the write that completes it is a change of its own.

**The directory is watched, not the file**: editors that save by renaming a new file over the
old one, and Kubernetes' ConfigMap volumes (which swap a ``..data`` symlink), replace the
file's inode, and a watch on the old inode would go quiet. A change that leaves the file's
bytes as they were (a ``touch``, another file of the directory) starts no reload.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path

import watchfiles

log = logging.getLogger("relay")

# Quiet time after the last change before the file is read, and the longest a burst of
# changes is held back.
QUIET_MS = 200
MAX_HOLD_MS = 600


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:  # being replaced, or removed: the next change says what became of it
        return None


def watch_file(path: Path, changed: Callable[[], None], stop: threading.Event) -> threading.Thread:
    """Call ``changed()`` (on a daemon thread) each time ``path``'s bytes change, until
    ``stop`` is set."""
    # A symlink to a file elsewhere: its target's directory is watched too (not one below the
    # file's own, as a ConfigMap's ..<time> directories are: those are replaced whole).
    target = path.resolve()
    directories = [path.parent]
    if target.parent != path.parent.resolve() and not _configmap(path.parent.resolve(), target):
        directories.append(target.parent)
    names = {path.name, target.name}

    def ours(_: watchfiles.Change, name: str) -> bool:
        base = Path(name).name
        return base in names or base.startswith("..")  # a ConfigMap's ..data and ..<time>

    def run() -> None:
        last = _read(path)
        try:
            for _ in watchfiles.watch(
                *directories,
                watch_filter=ours,
                step=QUIET_MS,
                debounce=MAX_HOLD_MS,
                stop_event=stop,
                rust_timeout=500,
                recursive=False,
                raise_interrupt=False,
            ):
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


def _configmap(directory: Path, target: Path) -> bool:
    """Is ``target`` in a ``..<time>`` directory of ``directory`` (a ConfigMap volume)?"""
    try:
        first = target.relative_to(directory).parts[0]
    except (ValueError, IndexError):
        return False
    return first.startswith("..")


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
