"""prometheus-client's multiprocess mode: the directory every worker writes its values to.

``relay serve`` makes the directory before granian starts the workers and names it in
``PROMETHEUS_MULTIPROC_DIR``, which forked and spawned workers alike inherit; it removes it at
exit. Each worker writes its own files (``counter_<pid>.db``, ``gauge_livesum_<pid>.db``...);
a scrape in any worker reads them all and sums them. A worker that dies leaves its counters'
file (its counts are kept; a respawned worker has a new pid and its own file, so nothing is
counted twice); the files of its live gauges (in flight, queue depth, breaker state) are
removed by the next flush or scrape of any worker (:func:`reap_dead`).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import tempfile

from prometheus_client import values
from prometheus_client.multiprocess import mark_process_dead

ENV = "PROMETHEUS_MULTIPROC_DIR"
_LIVE = re.compile(r"gauge_live[a-z]+_(\d+)\.db$")


def make_dir() -> str:
    """Make a fresh directory for this start (mode 0700) and name it in the environment."""
    path = tempfile.mkdtemp(prefix="relay-metrics-")
    os.environ[ENV] = path
    return path


def remove_dir(path: str | None) -> None:
    """Remove the directory made by :func:`make_dir` (the gateway is stopping)."""
    if path is None:
        return
    if os.environ.get(ENV) == path:
        del os.environ[ENV]
    shutil.rmtree(path, ignore_errors=True)


def shared_dir() -> str | None:
    """The directory of this gateway's workers, or None when not served that way (a test's
    in-process app, granian run directly): then values stay in the process."""
    path = os.environ.get(ENV)
    return path if path and os.path.isdir(path) else None


def use_files() -> None:
    """Make prometheus-client write values to the shared directory. It chose where at import,
    from the environment; a worker forked from a main process that imported it before the
    directory was named would otherwise keep its values in memory."""
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def reap_dead(path: str) -> None:
    """Remove the live gauges of workers that are gone (crashed, or replaced on SIGHUP)."""
    seen: set[int] = set()
    for name in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        found = _LIVE.search(name)
        if found is None:
            continue
        pid = int(found.group(1))
        if pid in seen or _alive(pid):
            continue
        seen.add(pid)
        mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process now holds the pid: ours is gone
        return False
    return True
