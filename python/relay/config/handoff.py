"""The configuration handed from the main process to its workers.

The main process validates the configuration once and publishes it here; every granian worker,
first start or respawn after a crash, decodes that exact value instead of reading
the YAML file again. So a file broken after start-up can never stop a running gateway, and all
workers serve the same configuration.

It travels as msgspec JSON in a file only the gateway's user can read (mode 0600, in a private
directory of mode 0700, in ``$XDG_RUNTIME_DIR`` when set, else the temporary directory); the
environment carries only its path (``RELAY_CONFIG_FILE``). Not the configuration itself: it
holds provider keys, the admin key and the database URL, and a process's environment is
inherited by everything it starts and shown by tools that list processes. Workers inherit the
path, fork or spawn alike. The main process removes the directory when it exits (normally, on
SIGTERM or SIGINT: see :func:`withdraw`); one left behind by a killed process is removed by the
next start of the gateway as the same user.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Mapping, MutableMapping
from pathlib import Path

import msgspec

from relay.config.model import Config
from relay.pidfile import pid_alive

HANDOFF_VAR = "RELAY_CONFIG_FILE"
_PREFIX = "relay-handoff-"
_FILE = "config.json"

_directory: Path | None = None
# The process that made it: forked workers inherit this module's state, never its clean-up.
_owner = 0


def publish(
    config: Config,
    environ: MutableMapping[str, str] | None = None,
    *,
    parent: str | None = None,
) -> Path:
    """Make ``config`` the one that workers started from now on will serve; returns the file.

    The first call makes the private directory (in ``parent``, default: see the module
    docstring); later calls (a hot reload) replace the file atomically in the same directory,
    where running workers find it (:mod:`relay.live`).
    """
    global _directory, _owner
    target = os.environ if environ is None else environ
    if _directory is None or _owner != os.getpid() or not _directory.is_dir():
        base = parent or _runtime_dir()
        _remove_stale(base)
        # mkdtemp: mode 0700, a name nobody could have prepared.
        _directory = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=base))
        _owner = os.getpid()
        atexit.register(withdraw)
    path = _directory / _FILE
    staged = _directory / f".{_FILE}.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        staged.unlink()  # left by a write that was interrupted
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(msgspec.json.encode(config))
    os.replace(staged, path)
    target[HANDOFF_VAR] = str(path)
    return path


# The dashboard's session secret of this start, when the configuration gives none (see below).
_start_secret: str | None = None


def with_session_secret(config: Config) -> Config:
    """``config`` with a random ``ui.session_secret`` made once per start when it sets none and
    there is no admin key to derive one from: every worker (and every reload) of this start
    signs and verifies the dashboard's sessions alike, which end with a restart."""
    global _start_secret
    ui = config.ui
    if not ui.enabled or ui.session_secret or config.auth.admin_key:
        return config
    if _start_secret is None:
        _start_secret = secrets.token_urlsafe(32)
    return msgspec.structs.replace(
        config, ui=msgspec.structs.replace(ui, session_secret=_start_secret)
    )


def handed_over(environ: Mapping[str, str] | None = None) -> Path | None:
    """The file the main process publishes to (and republishes to on a reload), or None when
    run without it."""
    path = (os.environ if environ is None else environ).get(HANDOFF_VAR)
    return None if path is None else Path(path)


def received(environ: Mapping[str, str] | None = None) -> Config | None:
    """The configuration the main process published, or None when run without it."""
    path = (os.environ if environ is None else environ).get(HANDOFF_VAR)
    if path is None:
        return None
    return msgspec.json.decode(Path(path).read_bytes(), type=Config)


def withdraw(environ: MutableMapping[str, str] | None = None) -> None:
    """Remove the published file and its directory (the main process, at exit)."""
    global _directory
    if _directory is not None and _owner == os.getpid():
        shutil.rmtree(_directory, ignore_errors=True)
        _directory = None
    (os.environ if environ is None else environ).pop(HANDOFF_VAR, None)


def _runtime_dir() -> str:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime) and os.access(runtime, os.W_OK):
        return runtime
    return tempfile.gettempdir()


def _remove_stale(base: str) -> None:
    """Remove the directories of gateways of this user that were killed (their pid is gone)."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(base):
            if not entry.name.startswith(_PREFIX):
                continue
            pid_text = entry.name[len(_PREFIX) :].split("-", 1)[0]
            with contextlib.suppress(OSError, ValueError):
                if entry.stat(follow_symlinks=False).st_uid != os.getuid():
                    continue
                pid = int(pid_text)
                # Our own pid: a gateway killed before this one got it (pid 1 in containers).
                if not entry.is_dir(follow_symlinks=False) or (
                    pid != os.getpid() and pid_alive(pid)
                ):
                    continue
                shutil.rmtree(entry.path, ignore_errors=True)
