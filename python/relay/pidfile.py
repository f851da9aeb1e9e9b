"""Where ``relay serve`` writes its main process's pid, for ``relay reload`` (SIGHUP) to find.

Default: ``relay-<port>.pid`` in ``$XDG_RUNTIME_DIR`` when it is set and writable, else the
temporary directory; one file per port, since one gateway listens on a port (``--reuse-port``
gateways write none unless given ``--pid-file``). granian writes the file when it starts,
refuses to start over the file of a live process, and removes it when it stops.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def default_pid_file(port: int) -> Path:
    """The pid file of the gateway on ``port``."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if not (runtime and os.path.isdir(runtime) and os.access(runtime, os.W_OK)):
        runtime = tempfile.gettempdir()
    return Path(runtime) / f"relay-{port}.pid"


class NoGateway(Exception):
    """No running gateway at the pid file (missing, unreadable, or its process is gone)."""


def gateway_pid(path: Path) -> int:
    """The pid of the live gateway that wrote ``path``."""
    try:
        pid = int(path.read_text().strip())
    except FileNotFoundError:
        raise NoGateway(f"no pid file at {path}: is `relay serve` running on that port?") from None
    except (OSError, ValueError) as exc:
        raise NoGateway(f"cannot read the pid file {path}: {exc}") from None
    if not pid_alive(pid):  # another user's is alive: the signal will say so
        raise NoGateway(f"{path} names pid {pid}, which is not running")
    return pid


def remove_stale(path: Path) -> None:
    """Remove ``path`` unless it names a live Relay (a gateway killed outright leaves its
    file, and granian refuses to start over a file whose pid is alive: reused by another
    program, it would keep the gateway from starting)."""
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        path.unlink(missing_ok=True)
        return
    if pid != os.getpid() and _is_relay(pid):
        return  # another gateway on this port (another address): granian says so
    path.unlink(missing_ok=True)


def _is_relay(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        cmdline = b""
    if not cmdline:  # no /proc, or a process being started: alive is all we can tell
        return pid_alive(pid)
    return b"relay" in cmdline


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (another user's counts: signal 0 is refused, not lost)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
